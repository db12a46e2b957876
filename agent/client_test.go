package agent

import (
	"errors"
	"testing"

	"github.com/vigilhq/vigil/agent/protocol"
)

// The server's error code decides what the agent does; a server from
// before codes is understood by its messages.
func TestRefusalCodes(t *testing.T) {
	for _, tc := range []struct {
		err              StatusError
		refused, setAway bool
	}{
		{StatusError{Code: 401, Reason: protocol.CodeRevoked, Message: "agent ag-1 was revoked"}, true, false},
		{StatusError{Code: 401, Reason: protocol.CodeUnknownAgent}, true, false},
		{StatusError{Code: 401, Reason: protocol.CodeBadSignature}, true, false},
		{StatusError{Code: 401, Reason: protocol.CodeClock, Message: "clock skew: ..."}, false, false},
		{StatusError{Code: 401, Message: "Vigil-Date 2026-01-01T00:00:00Z is more than 5m0s from the server's clock"}, false, false},
		{StatusError{Code: 401, Message: "agent ag-1 was revoked"}, true, false},
		{StatusError{Code: 409, Reason: protocol.CodeScanFinished, Message: "whatever the wording"}, false, true},
		{StatusError{Code: 409, Reason: protocol.CodeScanNotBegun}, false, true},
		{StatusError{Code: 409, Message: "scan s1 was never begun: send its begin batch first"}, false, true},
		{StatusError{Code: 409, Message: `location "x" is no longer in the server's configuration`}, false, false},
		{StatusError{Code: 503}, false, false},
	} {
		err := error(&tc.err)
		if got := errors.Is(classify(err), ErrRefused); got != tc.refused {
			t.Errorf("%v: refused = %v, want %v", err, got, tc.refused)
		}
		if got := rejected(err); got != tc.setAway {
			t.Errorf("%v: set aside = %v, want %v", err, got, tc.setAway)
		}
	}
}
