package redisconn

// URL returns the dataset's Redis URL as configured. It may hold a password: never print it.
func (c *Connector) URL() string { return c.url }

// KeyTemplates returns the templates of every key the dataset erases from: its keys (exact
// ones, then patterns), then the keys of its hash_fields and members. Placeholders are written
// {type}; patterns keep their glob characters.
func (c *Connector) KeyTemplates() []string {
	var out []string
	for _, p := range c.exact {
		out = append(out, p.src)
	}
	for _, p := range c.globs {
		out = append(out, p.src)
	}
	for _, f := range c.fields {
		out = append(out, f.key.src)
	}
	for _, m := range c.members {
		out = append(out, m.key.src)
	}
	return out
}
