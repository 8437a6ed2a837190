package wire

import "net/http"

// HTTPStatus is the HTTP status that carries an error code (docs/http.md: errors
// are JSON with the matching status).
func HTTPStatus(code string) int {
	switch code {
	case CodeNoSuchUser, CodeNotFound, CodeNoRequest:
		return http.StatusNotFound
	case CodeNotMember, CodeForbidden, CodeSignupClosed, CodeNotAllowed, CodeBlocked, CodeNotContact, CodeMuted:
		return http.StatusForbidden
	case CodeGroupGone:
		return http.StatusGone
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeExists, CodeGroupFull, CodeTooManyGroups, CodeTooManySettings, CodeTooManyDevices, CodeTooLate,
		CodeTooManyContacts, CodeTooManyBlocks:
		return http.StatusConflict
	case CodeUnavailable, CodeBusy:
		return http.StatusServiceUnavailable
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeInternal:
		return http.StatusInternalServerError
	case CodeTypeMismatch:
		return http.StatusUnsupportedMediaType
	case CodeHLSUnavailable:
		return http.StatusNotImplemented
	case CodeBadMedia, CodeRejected:
		return http.StatusUnprocessableEntity
	case CodeTimeout:
		return http.StatusRequestTimeout
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	}
	return http.StatusBadRequest
}

// CodeForStatus is the error code to assume for an HTTP error reply whose
// body carries none (a proxy's page, say).
func CodeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeExists
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusRequestTimeout:
		return CodeTimeout
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusGone:
		return CodeGroupGone
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}
