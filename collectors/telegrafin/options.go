package telegrafin

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	tgconfig "github.com/influxdata/telegraf/config"
	"github.com/influxdata/toml"

	"github.com/vigilhq/vigil/collectors"
)

// OptionError is a plugin option vigil could not apply. Key is the option
// as written under telegraf.inputs[i].options; Error names it
// "options.KEY", and NewAll prefixes "telegraf.inputs[i].".
type OptionError struct {
	Plugin string
	Key    string
	Err    error
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("options.%s: %v", e.Key, e.Err)
}

func (e *OptionError) Unwrap() error { return e.Err }

// ErrUnknownOption is wrapped by an OptionError for a key the plugin does
// not have.
var ErrUnknownOption = errors.New("unknown option")

// errMissingField is what the TOML decoder's MissingField hook returns, so
// the caller can tell "no such field" from "wrong type".
var errMissingField = errors.New("no such field")

// tomlConfig decodes the way telegraf's own config loader does: keys match
// toml tags, or field names with underscores and case ignored.
var tomlConfig = &toml.Config{
	NormFieldName: toml.DefaultConfig.NormFieldName,
	FieldToKey:    toml.DefaultConfig.FieldToKey,
	MissingField:  func(reflect.Type, string) error { return errMissingField },
}

var secretType = reflect.TypeFor[tgconfig.Secret]()

// applyOptions sets opts on the plugin struct the way the same keys in
// telegraf.conf would: each key is written as a one-line TOML document
// and decoded by the TOML library telegraf uses, so durations ("5s"),
// sizes and lists mean what telegraf's documentation says. Secret options
// (passwords) are refused in plain text; KEY_env or KEY_file name where
// to read them, as everywhere else in vigil's config.
func applyOptions(plugin string, p any, opts map[string]any) error {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := optionFields(reflect.TypeOf(p))
	for _, key := range keys {
		val := opts[key]
		name := key
		if base, kind, ok := secretRef(key, fields); ok {
			// password_env / password_file: read the secret now, apply it
			// as the plugin's own option.
			var env, file string
			s, isStr := val.(string)
			if !isStr || s == "" {
				return &OptionError{plugin, key, fmt.Errorf("want the name of an environment variable or file")}
			}
			if kind == "env" {
				env = s
			} else {
				file = s
			}
			secret, err := collectors.Secret("options."+base, env, file)
			if err != nil {
				return &OptionError{plugin, key, err}
			}
			name, val = base, secret
		} else if fields[key].secret {
			return &OptionError{plugin, key, fmt.Errorf("a secret is not accepted in the config file: set %s_env or %s_file", key, key)}
		}
		doc, err := tomlDocument(name, val)
		if err != nil {
			return &OptionError{plugin, key, err}
		}
		tbl, err := toml.Parse([]byte(doc))
		if err != nil {
			// tomlDocument writes valid TOML; keep the value out of the
			// message in case it was a secret.
			return &OptionError{plugin, key, fmt.Errorf("cannot encode the value as TOML: %v", redactTOMLError(err))}
		}
		if err := tomlConfig.UnmarshalTable(tbl, p); err != nil {
			var lerr *toml.LineError
			if errors.As(err, &lerr) {
				err = lerr.Err // every document is one line: the line says nothing
			}
			if errors.Is(err, errMissingField) || strings.Contains(err.Error(), "cannot be set through TOML") {
				return &OptionError{plugin, key, fmt.Errorf("%w for %s (it takes: %s)", ErrUnknownOption, plugin, strings.Join(optionNames(fields), ", "))}
			}
			return &OptionError{plugin, key, err}
		}
	}
	return nil
}

// optionField describes one option a plugin struct takes.
type optionField struct {
	secret bool
}

// optionFields lists the TOML keys of a plugin struct, descending into
// embedded structs (common TLS and proxy settings) as the decoder does.
func optionFields(t reflect.Type) map[string]optionField {
	out := map[string]optionField{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if f.Anonymous && f.Type.Kind() == reflect.Struct && tag == "" {
				walk(f.Type)
				continue
			}
			if !f.IsExported() || tag == "-" || tag == "" {
				continue
			}
			out[tag] = optionField{secret: f.Type == secretType || isSecretName(tag)}
		}
	}
	walk(t)
	return out
}

// isSecretName catches secrets the plugins keep in plain strings (the TLS
// key passphrase, a SOCKS5 password).
func isSecretName(key string) bool {
	return strings.Contains(key, "password") || strings.HasSuffix(key, "_pwd") || strings.HasSuffix(key, "_token")
}

func optionNames(fields map[string]optionField) []string {
	out := make([]string, 0, len(fields))
	for k := range fields {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// secretRef reports whether key is KEY_env or KEY_file for a secret
// option KEY.
func secretRef(key string, fields map[string]optionField) (base, kind string, ok bool) {
	for _, suffix := range []string{"_env", "_file"} {
		if b, found := strings.CutSuffix(key, suffix); found && fields[b].secret {
			return b, suffix[1:], true
		}
	}
	return "", "", false
}

func redactTOMLError(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// tomlDocument writes `key = value` as TOML.
func tomlDocument(key string, v any) (string, error) {
	var b strings.Builder
	b.WriteString(tomlKey(key))
	b.WriteString(" = ")
	if err := tomlValue(&b, v, 0); err != nil {
		return "", err
	}
	b.WriteByte('\n')
	return b.String(), nil
}

func tomlKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return tomlString(k)
		}
	}
	return k
}

// tomlString quotes s as a TOML basic string. TOML allows only the short
// escapes and \uXXXX, so strconv.Quote (which writes \x..) will not do.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

const maxOptionDepth = 8

// tomlValue writes one value decoded from YAML (or built in Go) as TOML.
func tomlValue(b *strings.Builder, v any, depth int) error {
	if depth > maxOptionDepth {
		return errors.New("nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		return errors.New("has no value")
	case string:
		b.WriteString(tomlString(x))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("is not a finite number")
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0" // TOML floats need a fraction or an exponent
		}
		b.WriteString(s)
	case time.Duration:
		// A Go caller may pass a duration; telegraf reads "5s".
		b.WriteString(tomlString(x.String()))
	case time.Time:
		b.WriteString(x.Format(time.RFC3339Nano))
	case []string:
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tomlString(s))
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := tomlValue(b, e, depth+1); err != nil {
				return fmt.Errorf("[%d] %w", i, err)
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{ ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tomlKey(k))
			b.WriteString(" = ")
			if err := tomlValue(b, x[k], depth+1); err != nil {
				return fmt.Errorf(".%s %w", k, err)
			}
		}
		b.WriteString(" }")
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return tomlValue(b, m, depth)
	default:
		return fmt.Errorf("unsupported value of type %T", v)
	}
	return nil
}
