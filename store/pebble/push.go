package pebble

import (
	"context"
	"errors"

	"github.com/imqtt/imqtt/store"
)

// errPushTODO: the Push role is being written (issue 16).
var errPushTODO = errors.New("push: not implemented yet")

func (s *Store) PutPushDevice(context.Context, store.PushDevice) error { return errPushTODO }
func (s *Store) GetPushDevice(context.Context, string, string) (store.PushDevice, error) {
	return store.PushDevice{}, errPushTODO
}
func (s *Store) PushDevices(context.Context, []string) ([]store.PushDevice, error) {
	return nil, errPushTODO
}
func (s *Store) DeletePushDevice(context.Context, string, string, string) error { return errPushTODO }
func (s *Store) DeleteUserPushDevices(context.Context, string) error            { return errPushTODO }
func (s *Store) SetLastPush(context.Context, string, string, int64) error       { return errPushTODO }
func (s *Store) ClaimPushJobs(context.Context, string, int64, int64, int) ([]store.PushJob, error) {
	return nil, errPushTODO
}
func (s *Store) DeletePushJobs(context.Context, []int64) error        { return errPushTODO }
func (s *Store) AddPushItems(context.Context, []store.PushItem) error { return errPushTODO }
func (s *Store) DuePushDevices(context.Context, int64, int) ([]store.SessionID, error) {
	return nil, errPushTODO
}
func (s *Store) ClaimPushDevice(context.Context, string, string, string, int64, int64) (bool, error) {
	return false, errPushTODO
}
func (s *Store) ReleasePushDevice(context.Context, string, string, string) error { return errPushTODO }
func (s *Store) PendingPushItems(context.Context, string, string) ([]store.PushItem, error) {
	return nil, errPushTODO
}
func (s *Store) DonePushItems(context.Context, string, string, []int64, int64) error {
	return errPushTODO
}
func (s *Store) RetryPushItems(context.Context, string, string, []int64, int64, int) error {
	return errPushTODO
}
func (s *Store) SweepPush(context.Context, int64) (int, error)   { return 0, errPushTODO }
func (s *Store) PushDepth(context.Context) (int64, int64, error) { return 0, 0, errPushTODO }
