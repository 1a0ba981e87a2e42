package registry

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Credentials are never written in the file: every value that carries one must take it from
// the environment. literalSecrets walks the whole document, as written (before ${VAR}
// expansion), and reports each credential written literally, at its line:
//
//   - the password of a URL or DSN (scheme://user:PASSWORD@host, a MySQL user:PASSWORD@tcp(…),
//     a PostgreSQL keyword DSN's password=PASSWORD) must be a ${VAR}, or the whole value one;
//   - a URL's query parameter named like a credential (token, key, secret, password,
//     signature…) must be a ${VAR};
//   - a header that carries credentials (Authorization, Proxy-Authorization, Cookie, X-Api-Key,
//     and any header named like a credential) must take them from a ${VAR}: "Bearer ${TOKEN}"
//     and "${AUTHORIZATION}" are fine, "Bearer abc" is not;
//   - a value under a key named password, passwd, secret, token, api_key, access_key,
//     secret_key or private_key must be a single ${VAR}.
//
// Secrets of the configuration itself (auth tokens, audit keys) have their own messages.

var (
	// envRefsRE matches the ${VAR} references of a value.
	envRefsRE = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)
	// urlUserinfoRE finds scheme://user:password@ in a value (the password may be empty).
	urlUserinfoRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://([^/@\s:]*):([^/@\s]*)@`)
	// mysqlDSNRE finds user:password@protocol( at the start of a MySQL DSN.
	mysqlDSNRE = regexp.MustCompile(`^([^:@/\s]*):([^@\s]*)@[a-z]*\(`)
	// kvPasswordRE finds password=VALUE in a keyword DSN.
	kvPasswordRE = regexp.MustCompile(`(?i)(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
	// queryParamRE finds name=value in a URL's query.
	queryParamRE = regexp.MustCompile(`[?&]([^=&#\s]+)=([^&#\s]*)`)
	// credentialNameRE matches names of parameters and headers that carry credentials.
	credentialNameRE = regexp.MustCompile(`(?i)(token|secret|passw|pwd|api[-_]?key|access[-_]?key|private[-_]?key|signature|^sig$|^key$|auth|cookie|session)`)
	// authSchemeRE is what may be written literally before a credential in a header.
	authSchemeRE = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9_-]* ?)?$`)
)

// secretKeys are the keys whose whole value is a credential.
var secretKeys = map[string]bool{"password": true, "passwd": true, "secret": true, "token": true, "api_key": true,
	"apikey": true, "access_key": true, "secret_key": true, "private_key": true, "signing_key": true}

// isEnvRef reports whether s is exactly one ${VAR}.
func isEnvRef(s string) bool { return envRefRE.MatchString(strings.TrimSpace(s)) }

// literalSecrets reports the credentials written in the file under n (see above). key is the
// mapping key n is the value of, path where it is, for messages.
func (l *loader) literalSecrets(n *yaml.Node, key, path string) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			switch {
			case strings.HasSuffix(path, ":"):
				p = path + " " + k.Value
			case path != "":
				p = path + "." + k.Value
			}
			if strings.EqualFold(key, "headers") && v.Kind == yaml.ScalarNode {
				l.headerSecret(v, k.Value, p)
				continue
			}
			l.literalSecrets(v, k.Value, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if path == "datasets" {
				if name := get(c, "name"); name != nil && name.Kind == yaml.ScalarNode {
					p = "dataset " + name.Value + ":"
				}
			}
			l.literalSecrets(c, key, p)
		}
	case yaml.ScalarNode:
		if l.bad(n) || n.Tag == "!!null" {
			return
		}
		l.valueSecret(n, key, path)
	}
}

// valueSecret checks one scalar value.
func (l *loader) valueSecret(n *yaml.Node, key, path string) {
	raw := l.rawValue(n)
	if isEnvRef(raw) {
		return
	}
	// Secrets of the configuration's own sections have their own checks and messages.
	if path == "audit.key" || path == "audit.signing_key" || strings.HasPrefix(path, "auth.") {
		return
	}
	if secretKeys[strings.ToLower(key)] {
		l.errorf(n, "%s: a credential is written in the file: secrets come from the environment, write %s: ${VAR}", path, key)
		return
	}
	if m := urlUserinfoRE.FindStringSubmatch(raw); m != nil && m[2] != "" && !isEnvRef(m[2]) {
		l.errorf(n, "%s: the URL holds a password written in the file: write it as ${VAR} (scheme://user:${PASSWORD}@host) or give the whole URL as ${VAR}", path)
		return
	}
	if strings.EqualFold(key, "dsn") {
		if m := mysqlDSNRE.FindStringSubmatch(raw); m != nil && m[2] != "" && !isEnvRef(m[2]) {
			l.errorf(n, "%s: the DSN holds a password written in the file: write user:${PASSWORD}@tcp(…) or give the whole DSN as ${VAR}", path)
			return
		}
		if m := kvPasswordRE.FindStringSubmatch(raw); m != nil && !isEnvRef(strings.Trim(m[1], "'")) {
			l.errorf(n, "%s: the DSN holds a password written in the file: write password=${PASSWORD} or give the whole DSN as ${VAR}", path)
			return
		}
	}
	if strings.Contains(raw, "://") {
		for _, m := range queryParamRE.FindAllStringSubmatch(raw, -1) {
			if credentialNameRE.MatchString(m[1]) && m[2] != "" && !isEnvRef(m[2]) && !strings.HasPrefix(m[2], "{") {
				l.errorf(n, "%s: the URL's parameter %s holds a credential written in the file: write %s=${VAR}", path, truncate(m[1], 40), truncate(m[1], 40))
				return
			}
		}
	}
}

// headerSecret checks a header value: a header that carries credentials takes them from the
// environment; only an authentication scheme ("Bearer ") may be written around the ${VAR}.
func (l *loader) headerSecret(n *yaml.Node, name, path string) {
	if l.bad(n) || n.Tag == "!!null" {
		return
	}
	if !credentialNameRE.MatchString(name) && !strings.EqualFold(name, "authorization") {
		l.valueSecret(n, name, path)
		return
	}
	raw := l.rawValue(n)
	refs := envRefsRE.FindAllString(raw, -1)
	literal := envRefsRE.ReplaceAllString(raw, "")
	if len(refs) == 0 || !authSchemeRE.MatchString(literal) {
		l.errorf(n, "%s: header %s carries a credential written in the file: take it from the environment, such as %s: \"Bearer ${TOKEN}\"", path, truncate(name, 40), truncate(name, 40))
	}
}
