package wire

// CodeMethodNotAllowed: HTTP only: the path is a route, but not with this
// method (405, with an Allow header naming the methods it takes).
const CodeMethodNotAllowed = "method_not_allowed"
