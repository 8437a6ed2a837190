package wire

// GroupCreate is the body of POST /v1/groups; ID is optional.
type GroupCreate struct {
	ID      string   `json:"id,omitempty"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// GroupMembers is the body of POST /v1/groups/{gid}/members. Role "admin"
// (owner only) makes the users admins; empty adds them as members.
type GroupMembers struct {
	Users []string `json:"users"`
	Role  string   `json:"role,omitempty"`
}

// Group is a group as GET /v1/groups/{gid} shows it to a member.
type Group struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Created int64  `json:"created"`
	Count   int    `json:"count"`          // members
	Role    string `json:"role,omitempty"` // the caller's role
	Seq     uint64 `json:"seq"`            // the newest message's seq
	Notice  string `json:"notice,omitempty"`
	Avatar  string `json:"avatar,omitempty"`
	// Muted: only the owner and admins may send (GroupPatch.Muted).
	Muted bool `json:"muted,omitempty"`
	// Disbanded is when the owner disbanded the group (unix ms): nothing
	// can be sent, members read its history up to the disband.
	Disbanded int64    `json:"disbanded,omitempty"`
	Members   []Member `json:"members,omitempty"` // one page, with ?after=&limit=
}

// Member is one member of a group.
type Member struct {
	User    string `json:"user"`
	Role    string `json:"role"`
	JoinSeq uint64 `json:"join_seq"`
	// MuteUntil: the member may not send until then (unix ms).
	MuteUntil int64 `json:"mute_until,omitempty"`
}

// Groups is the reply of GET /v1/groups.
type Groups struct {
	Groups []Group `json:"groups"`
}

// GroupEvent tells a user about a change of its membership.
type GroupEvent struct {
	Kind   string `json:"kind"` // "group"
	Group  string `json:"group"`
	Action string `json:"action"` // GroupAdded, GroupRemoved, GroupDisbanded
	By     string `json:"by"`
}
