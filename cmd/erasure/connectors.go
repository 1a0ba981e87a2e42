package main

import (
	"errors"

	"erasure"
	_ "erasure/connector/files"   // registers "files"
	_ "erasure/connector/http"    // registers "http"
	_ "erasure/connector/nats"    // registers "nats"
	_ "erasure/connector/records" // registers "records"
	_ "erasure/connector/redis"   // registers "redis"
	_ "erasure/connector/sql"     // registers "sql"
	"erasure/internal/words"
	"erasure/registry"
)

// configError turns the registry's list of errors into one *erasure.Error for the CLI.
func configError(path string, err error) error {
	var errs registry.Errors
	if errors.As(err, &errs) {
		return &erasure.Error{Code: erasure.EINVALID, Message: plural(len(errs), "error") + " in " + path, Details: errs.Lines()}
	}
	var e *erasure.Error
	if errors.As(err, &e) {
		return e // keeps its code: a missing file is not found (exit 3)
	}
	return &erasure.Error{Code: erasure.EINVALID, Message: err.Error()}
}

func plural(n int, word string) string { return words.Count(n, word) }
