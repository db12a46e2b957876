package rules

import (
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// Control is one entry of the control catalog: a HIPAA Security Rule
// citation, an HPH CPG goal, an insurance question or a state overlay.
type Control struct {
	ID        string `yaml:"id" json:"id"`
	Framework string `yaml:"framework" json:"framework"`
	Title     string `yaml:"title" json:"title"`
	// ROrA is R (required), A (addressable) or S (a standard whose
	// specifications carry the distinction); empty outside HIPAA.
	ROrA   string `yaml:"r_or_a" json:"r_or_a,omitempty"`
	Status string `yaml:"status" json:"status,omitempty"`
	State  string `yaml:"state" json:"state,omitempty"`
}

// Catalog is the embedded, versioned control catalog.
type Catalog struct {
	Version  int       `yaml:"version"`
	Controls []Control `yaml:"controls"`
	byID     map[string]Control
}

// LoadCatalog parses the embedded catalog and checks it.
func LoadCatalog() (*Catalog, error) {
	data, err := embedded.ReadFile("catalog/controls.yaml")
	if err != nil {
		return nil, err
	}
	var c Catalog
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("control catalog: %w", err)
	}
	c.byID = map[string]Control{}
	for _, k := range c.Controls {
		if k.ID == "" || k.Title == "" {
			return nil, fmt.Errorf("control catalog: entry without id or title: %+v", k)
		}
		if _, dup := c.byID[k.ID]; dup {
			return nil, fmt.Errorf("control catalog: duplicate id %q", k.ID)
		}
		c.byID[k.ID] = k
	}
	return &c, nil
}

// Control returns the catalog entry for id.
func (c *Catalog) Control(id string) (Control, bool) {
	k, ok := c.byID[id]
	return k, ok
}

// IDs returns every control id, sorted.
func (c *Catalog) IDs() []string {
	out := make([]string, 0, len(c.byID))
	for id := range c.byID {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
