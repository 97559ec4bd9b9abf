package aws

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/aws/smithy-go"
)

// Kind classifies an AWS error by what the operator can do about it.
type Kind int

// The kinds of Error. Throttling reaches the caller only after the SDK's own
// retries are used up.
const (
	KindOther Kind = iota
	KindNotFound
	KindInvalidState
	KindAccessDenied
	KindThrottling
	KindCredentials
	KindCanceled
)

// String is the kind as shown in the one-line message.
func (k Kind) String() string {
	switch k {
	case KindNotFound:
		return "not found"
	case KindInvalidState:
		return "invalid state"
	case KindAccessDenied:
		return "access denied"
	case KindThrottling:
		return "throttled"
	case KindCredentials:
		return "no usable credentials"
	case KindCanceled:
		return "canceled"
	}
	return "failed"
}

// Error is an AWS call's failure, translated once at this package's boundary.
// Its message is one line: the call, the kind, the AWS error code, AWS's
// message and, when there is one, the fix.
type Error struct {
	// Call names the API call, e.g. "rds RestoreDBClusterToPointInTime".
	Call string
	// Kind classifies the error.
	Kind Kind
	// Code is the AWS error code (DBClusterNotFoundFault), "" if none.
	Code string
	// Message is AWS's message, on one line.
	Message string
	// Hint says what to do, "" if nothing useful can be said.
	Hint string
	// Err is the SDK's error.
	Err error
}

// Error renders the one-line message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Call)
	b.WriteString(": ")
	b.WriteString(e.Kind.String())
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Unwrap returns the SDK's error, so errors.As still finds its typed faults.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of a translated error, KindOther for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// IsNotFound reports whether err says the resource does not exist.
func IsNotFound(err error) bool { return KindOf(err) == KindNotFound }

// maxMessage keeps one AWS message from flooding a log line.
const maxMessage = 300

// translate turns an SDK error into an *Error naming call.
func translate(call string, err error) error {
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	e := &Error{Call: call, Err: err}
	var api smithy.APIError
	switch {
	case errors.As(err, &api):
		e.Code = api.ErrorCode()
		e.Message = api.ErrorMessage()
		e.Kind = classify(e.Code)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind = KindCanceled
		e.Message = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			e.Hint = "AWS did not answer in time; check network access to the AWS endpoint and retry"
		}
	case isCredentialsError(err):
		e.Kind = KindCredentials
		e.Message = err.Error()
	default:
		e.Message = err.Error()
	}
	e.Message = oneLine(e.Message)
	if e.Hint == "" {
		e.Hint = hint(e.Kind, e.Code)
	}
	return e
}

// classify maps AWS error codes (RDS query faults, JSON exceptions, Route 53
// codes) onto kinds. Codes are matched by pattern because each service spells
// them differently: DBClusterNotFoundFault, DBInstanceNotFound,
// ResourceNotFoundException, ParameterNotFound, NoSuchHostedZone.
func classify(code string) Kind {
	switch code {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
		"NotAuthorized", "AuthorizationError", "AuthFailure":
		return KindAccessDenied
	case "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
		"ExpiredTokenException", "SignatureDoesNotMatch", "IncompleteSignature",
		"MissingAuthenticationToken", "InvalidSignatureException":
		return KindCredentials
	case "Throttling", "ThrottlingException", "ThrottledException",
		"RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled",
		"RequestThrottledException", "PriorRequestNotComplete", "SlowDown":
		return KindThrottling
	case "InvalidRequestException":
		// Secrets Manager: the secret is marked for deletion, or similar.
		return KindInvalidState
	}
	switch {
	case strings.HasSuffix(code, "NotFound"), strings.HasSuffix(code, "NotFoundFault"),
		strings.HasSuffix(code, "NotFoundException"), strings.HasPrefix(code, "NoSuch"):
		return KindNotFound
	case strings.HasPrefix(code, "Invalid") && strings.Contains(code, "State"):
		return KindInvalidState
	}
	return KindOther
}

// hint is the fix shown after the message.
func hint(k Kind, code string) string {
	switch k {
	case KindNotFound:
		return "check the identifier in the config, and that the region and profile in use are the right account"
	case KindInvalidState:
		return "the resource is busy or in the wrong state; wait until it is available and retry"
	case KindAccessDenied:
		return "check the IAM policy of the profile in use"
	case KindThrottling:
		return "AWS is throttling this account's API calls; wait a minute and retry"
	case KindCredentials:
		if strings.Contains(code, "Expired") {
			return "the session has expired; refresh it (aws sso login) and retry"
		}
		return "set AWS_PROFILE or the profile in the config, or run aws sso login, and retry"
	}
	return ""
}

// isCredentialsError spots the SDK's failure to find any credentials, which is
// not an API error and deserves its own fix.
func isCredentialsError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to retrieve credentials") ||
		strings.Contains(s, "no EC2 IMDS role found") ||
		strings.Contains(s, "failed to refresh cached credentials")
}

// oneLine flattens and shortens a message so the error stays one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	// A hint follows after "; ", so AWS's closing period would read ".;".
	s = strings.TrimSuffix(s, ".")
	if len(s) > maxMessage {
		n := maxMessage
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s
}
