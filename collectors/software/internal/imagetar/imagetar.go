// Package imagetar recognises container image tarballs written by
// `docker save` without unpacking them, so that vigil can hand them to the
// image scanner and everything else to the lockfile and SBOM scanners.
package imagetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
)

// maxTarHeaders bounds how far vigil walks a tarball looking for the
// manifest of a saved image: `docker save` writes it among the first few
// entries, and a layer per image rarely reaches the hundreds.
const maxTarHeaders = 10_000

// ErrOCIArchive says a tarball is an image in OCI layout only, which
// osv-scanner v2.5.0 cannot load.
var ErrOCIArchive = errors.New("an OCI-layout image archive without manifest.json: osv-scanner v2.5.0 reads `docker save` tarballs only (docker save IMAGE -o FILE.tar, or skopeo copy ... docker-archive:FILE.tar)")

// IsImage tells whether the file at p is an image tarball written by
// `docker save`: a tar archive with manifest.json at its top. A tar that
// holds an OCI image layout but no manifest.json is reported as
// ErrOCIArchive; anything else (lockfiles, SBOMs, other tars) is not an
// image.
func IsImage(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return IsImageTar(f)
}

// IsImageTar is IsImage over a reader. It seeks so that archive/tar
// skips layer contents instead of reading them: the manifest of a
// `docker save` tarball comes after its layers.
func IsImageTar(r io.ReadSeeker) (bool, error) {
	var head [512]byte
	n, err := io.ReadFull(r, head[:])
	if err != nil || n < len(head) || !bytes.Equal(head[257:262], []byte("ustar")) {
		return false, nil // too short, or not a POSIX/GNU tar header
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	tr := tar.NewReader(r)
	oci := false
	for range maxTarHeaders {
		h, err := tr.Next()
		if err != nil {
			break // end of archive or a malformed one: decide on what was seen
		}
		switch path.Clean(h.Name) {
		case "manifest.json":
			return true, nil
		case "oci-layout", "index.json":
			oci = true
		}
	}
	if oci {
		return false, ErrOCIArchive
	}
	return false, nil
}
