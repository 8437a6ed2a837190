package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/imqtt/imqtt/wire"
)

// CreateGroup makes a group owned by the caller (POST /v1/groups).
func (h *HTTP) CreateGroup(ctx context.Context, req wire.GroupCreate) (wire.Group, error) {
	var g wire.Group
	if err := h.do(ctx, http.MethodPost, "/v1/groups", nil, req, &g); err != nil {
		return wire.Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// Groups lists the caller's groups (GET /v1/groups).
func (h *HTTP) Groups(ctx context.Context) (wire.Groups, error) {
	var gs wire.Groups
	if err := h.do(ctx, http.MethodGet, "/v1/groups", nil, nil, &gs); err != nil {
		return wire.Groups{}, fmt.Errorf("groups: %w", err)
	}
	return gs, nil
}

// Group shows one group with a page of members after a user ID.
func (h *HTTP) Group(ctx context.Context, id, after string, limit int) (wire.Group, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	seg, err := pathID("group", id)
	if err != nil {
		return wire.Group{}, err
	}
	var g wire.Group
	if err := h.do(ctx, http.MethodGet, "/v1/groups/"+seg, q, nil, &g); err != nil {
		return wire.Group{}, fmt.Errorf("group %s: %w", id, err)
	}
	return g, nil
}

// AddMembers adds users to a group (role "admin": make them admins).
func (h *HTTP) AddMembers(ctx context.Context, id string, users []string, role string) (wire.Group, error) {
	seg, err := pathID("group", id)
	if err != nil {
		return wire.Group{}, err
	}
	var g wire.Group
	if err := h.do(ctx, http.MethodPost, "/v1/groups/"+seg+"/members", nil, wire.GroupMembers{Users: users, Role: role}, &g); err != nil {
		return wire.Group{}, fmt.Errorf("add members to %s: %w", id, err)
	}
	return g, nil
}

// RemoveMember removes user from a group; the caller's own ID leaves it.
func (h *HTTP) RemoveMember(ctx context.Context, id, user string) error {
	gseg, err := pathID("group", id)
	if err != nil {
		return err
	}
	useg, err := pathID("user", user)
	if err != nil {
		return err
	}
	if err := h.do(ctx, http.MethodDelete, "/v1/groups/"+gseg+"/members/"+useg, nil, nil, nil); err != nil {
		return fmt.Errorf("remove %s from %s: %w", user, id, err)
	}
	return nil
}
