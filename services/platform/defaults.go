package platform

import "github.com/helmdesk/helmdesk/pkg/config"

// DefaultConfig returns the configuration with every default applied, as a process
// started with no flags and no environment would have it.
func DefaultConfig() (Config, error) {
	var cfg Config
	s := config.NewSet("helmdesk")
	cfg.Declare(s)
	_, err := s.Parse(nil, func(string) string { return "" })
	return cfg, err
}
