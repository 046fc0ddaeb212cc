package client

import (
	"fmt"

	"github.com/pipebind/pipebind/login"
)

// ErrConfig is matched by the error of a Dial whose Config cannot work (an
// unknown mechanism, an empty password, a negative timeout field ...): the
// caller's own mistake, found before connecting, which no server and no
// retry can fix. It is login's.
var ErrConfig = login.ErrConfig

// validate checks what Dial can check of cfg before connecting, so that a
// local mistake is reported as the caller's (ErrConfig), not as the
// server's refusal.
func validate(cfg Config) error {
	if cfg.JID.Localpart() == "" || cfg.JID.Domainpart() == "" {
		return fmt.Errorf("client: %w: Config.JID %q must be an account address (user@domain)", ErrConfig, cfg.JID)
	}
	if cfg.Password == "" && cfg.PasswordFunc == nil {
		return fmt.Errorf("client: %w: Config.Password or Config.PasswordFunc is required", ErrConfig)
	}
	if err := login.CheckMechanisms(cfg.Mechanisms); err != nil {
		return fmt.Errorf("client: Config.Mechanisms: %w", err)
	}
	if cfg.SyncPageSize < 0 {
		return fmt.Errorf("client: %w: Config.SyncPageSize %d is negative", ErrConfig, cfg.SyncPageSize)
	}
	return nil
}
