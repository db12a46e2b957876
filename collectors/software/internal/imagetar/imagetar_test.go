package imagetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"testing"
)

func tarOf(t testing.TB, names ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("{}"))
	}
	tw.Close()
	return buf.Bytes()
}

func TestIsImageTar(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want bool
		err  error
	}{
		{"docker save, manifest after the layers", tarOf(t, "abc/layer.tar", "abc/json", "cfg.json", "manifest.json", "repositories"), true, nil},
		{"docker 25+ save (both layouts)", tarOf(t, "blobs/sha256/aa", "index.json", "manifest.json", "oci-layout"), true, nil},
		{"OCI layout only", tarOf(t, "oci-layout", "index.json", "blobs/sha256/aa"), false, ErrOCIArchive},
		{"some other tar", tarOf(t, "etc/passwd"), false, nil},
		{"JSON lockfile", []byte(`{"lockfileVersion": 3}`), false, nil},
		{"empty", nil, false, nil},
	}
	for _, tc := range cases {
		got, err := IsImageTar(bytes.NewReader(tc.data))
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v %v", tc.name, got, err)
		}
	}
}

// go test -fuzz FuzzImageTar ./collectors/software/internal/imagetar
func FuzzImageTar(f *testing.F) {
	f.Add(tarOf(f, "manifest.json"))
	f.Add(tarOf(f, "oci-layout", "index.json"))
	f.Add([]byte("{\"lockfileVersion\": 3}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		IsImageTar(bytes.NewReader(data))
	})
}
