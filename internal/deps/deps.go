// Package deps pins the dependencies the packages being written will import,
// so go.mod stays tidy while they land. Delete when every import is real.
package deps

import (
	_ "github.com/Ullaakut/nmap/v3"
	_ "github.com/gin-gonic/gin"
	_ "github.com/google/cel-go/cel"
	_ "github.com/projectdiscovery/nuclei/v3/lib"
	_ "golang.org/x/crypto/ssh"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
