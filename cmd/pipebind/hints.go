package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"syscall"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

// withHint adds to err, the failure of a login configured by pf, what the
// user may try: the flag that fixes a mismatch between the flags and the
// server (-tls, -ca, -addr, -timeout ...). Errors without advice are
// returned as they are.
func withHint(err error, pf *probeFlags) error {
	if err == nil {
		return nil
	}
	if h := loginHint(err, pf); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

func loginHint(err error, pf *probeFlags) string {
	addr := pf.addr
	if addr == "" {
		addr = "the server"
	}
	var (
		notTLS    tls.RecordHeaderError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		dns       *net.DNSError
		downgrade *login.DowngradeError
		le        *login.Error
	)
	errors.As(err, &le)
	switch {
	case errors.As(err, &notTLS):
		return addr + " does not answer TLS: if it is a STARTTLS port (usually 5222), use -tls starttls (or -tls auto)"
	case errors.As(err, &unknownCA):
		if pf.ca != "" {
			return "the server's certificate is not signed by the CA in " + pf.ca + " (-ca, or " + envCA + ")"
		}
		return "the server's certificate is signed by an authority this system does not trust: give its CA certificate (PEM) with -ca FILE or " + envCA
	case errors.As(err, &hostname):
		return "the certificate is not valid for the JID's domain, which is what is checked even with -addr: is -addr the right server?"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the server's certificate has expired or is not valid yet: check this machine's clock, or tell the server's admin"
	case errors.As(err, &downgrade):
		return "if the server really lost " + downgrade.Pinned + ", accept its weaker mechanism with -allow-downgrade"
	case errors.Is(err, syscall.ECONNREFUSED):
		var op *net.OpError
		if errors.As(err, &op) && op.Addr != nil {
			addr = op.Addr.String()
		}
		return "nothing accepts connections at " + addr + ": check -addr (or " + envAddr + ") and the port: 5222 for STARTTLS, 5223 for Direct TLS"
	case errors.As(err, &dns) && le != nil && le.Step == login.StepConnect:
		return "the address does not resolve: check -addr (or " + envAddr + ")"
	case le != nil && le.Step == login.StepStartTLS && pf.tlsMode == "starttls" && login.ConnectionLost(err):
		return addr + " closed the connection before STARTTLS: if it is a Direct TLS port (usually 5223), use -tls direct (or -tls auto)"
	case errors.Is(err, client.ErrTimeout):
		return "no answer within -timeout " + pf.timeout.String() + ": is " + addr + " an XMPP port? (-timeout waits longer)"
	case errors.Is(err, login.ErrNeedPassword):
		return "set " + envPassword + ", or run on a terminal to be asked"
	case errors.Is(err, client.ErrAuth):
		return "check the account and its password (" + envPassword + " or the prompt)"
	case errors.Is(err, client.ErrRefused) && pf.mechs != "" && le != nil && le.Step == login.StepFeatures:
		return "-mech allows none of the mechanisms the server offers: leave -mech out, or list one of them"
	case errors.Is(err, client.ErrInsecure) && pf.insecure:
		return "even with -insecure-skip-verify, a mechanism the server does not offer is never used"
	}
	return ""
}
