package api_test

import (
	"context"
	"errors"

	"erasure"
)

// failing is a Service whose Datasets fails with an unexpected error.
type failing struct{ erasure.Service }

func (failing) Datasets(context.Context) ([]erasure.DatasetInfo, error) {
	return nil, errors.New("sqlite: database is locked (/var/lib/erasure/erasure.db)")
}
