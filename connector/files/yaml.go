package files

import "go.yaml.in/yaml/v3"

// blockKey returns the value node of key in mapping n, or n itself, for error lines.
func blockKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || key == "" || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}
