package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// validator walks the YAML tree, decodes it into the Config and remembers
// the line of every field so that later checks can point at it.
type validator struct {
	allowLarge bool
	file       string
	errs       Errors
	lines      map[string]int // field path → line
}

func (v *validator) errorf(line int, field, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of the field at path, or of its closest parent.
func (v *validator) line(path string) int {
	for path != "" {
		if l, ok := v.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// fail records a problem with the field at path.
func (v *validator) fail(path, format string, args ...any) {
	v.errorf(v.line(path), path, format, args...)
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// decode fills out from node, reporting unknown fields and wrong types.
func (v *validator) decode(node *yaml.Node, out reflect.Value, path string) {
	if v.lines == nil {
		v.lines = map[string]int{}
	}
	if path != "" {
		v.lines[path] = node.Line
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if out.CanAddr() && out.Addr().Type().Implements(unmarshalerType) {
		if err := out.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(node); err != nil {
			v.errorf(node.Line, path, "%v", err)
		}
		return
	}
	switch out.Kind() {
	case reflect.Pointer:
		// An optional value (schedules[].jitter, digest): absent stays nil,
		// anything else is decoded, and checked, as the value itself.
		if node.Tag == "!!null" {
			return
		}
		p := reflect.New(out.Type().Elem())
		v.decode(node, p.Elem(), path)
		out.Set(p)
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			if node.Tag == "!!null" {
				return
			}
			v.errorf(node.Line, path, "must be a mapping of fields, got %s", describe(node))
			return
		}
		fields := map[string]int{}
		var names []string
		t := out.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = i
			names = append(names, tag)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, val := node.Content[i], node.Content[i+1]
			sub := joinPath(path, k.Value)
			idx, ok := fields[k.Value]
			if !ok && looksSecret(k.Value) {
				v.errorf(k.Line, sub, "secrets are never written in the config file: name an environment variable with %s_env or a file with %s_file", k.Value, k.Value)
				continue
			}
			if !ok {
				v.errorf(k.Line, sub, "unknown field%s (known fields: %s)", suggest(k.Value, names), strings.Join(sorted(names), ", "))
				continue
			}
			if seen[k.Value] {
				v.errorf(k.Line, sub, "field appears twice")
				continue
			}
			seen[k.Value] = true
			v.decode(val, out.Field(idx), sub)
		}
	case reflect.Slice:
		if node.Tag == "!!null" {
			return
		}
		if node.Kind != yaml.SequenceNode {
			v.errorf(node.Line, path, "must be a list, got %s", describe(node))
			return
		}
		s := reflect.MakeSlice(out.Type(), len(node.Content), len(node.Content))
		for i, item := range node.Content {
			v.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		out.Set(s)
	case reflect.Map:
		// Free-form settings handed to a library (telegraf plugin
		// options); their own schema checks them.
		if node.Tag == "!!null" {
			return
		}
		if node.Kind != yaml.MappingNode {
			v.errorf(node.Line, path, "must be a mapping, got %s", describe(node))
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			if k := node.Content[i]; looksSecret(k.Value) {
				v.errorf(k.Line, joinPath(path, k.Value), "secrets are never written in the config file: name an environment variable with %s_env or a file with %s_file", k.Value, k.Value)
				return
			}
		}
		if err := node.Decode(out.Addr().Interface()); err != nil {
			v.errorf(node.Line, path, "%v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	default:
		if node.Kind != yaml.ScalarNode {
			v.errorf(node.Line, path, "must be a single value, got %s", describe(node))
			return
		}
		if node.Tag == "!!null" {
			return
		}
		if out.Kind() == reflect.String && node.Tag != "!!str" {
			// Accept numbers and booleans where a string is expected
			// (ports: 22,80 is parsed by YAML as a string anyway).
			out.SetString(node.Value)
			return
		}
		if err := node.Decode(out.Addr().Interface()); err != nil {
			v.errorf(node.Line, path, "must be %s, got %q", kindName(out.Kind()), node.Value)
		}
	}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	default:
		return "a " + k.String()
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// suggest names the known field closest to a misspelt one.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(got, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func looksSecret(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"password", "secret", "token", "api_key", "apikey", "private_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
