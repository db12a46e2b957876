// Package integration holds vigil's end-to-end tests: they build the vigil
// binary, start the network-namespace lab of internal/lab (real daemons with
// planted weaknesses) and check that `vigil scan` finds exactly what was
// planted. They need root and the lab's daemons (scripts/install-deps.sh)
// and skip, saying why, without them; VIGIL_LAB_REQUIRED=1 makes that a
// failure instead (CI sets it).
package integration
