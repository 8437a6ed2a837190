package pebble

import (
	"context"
	"errors"

	"github.com/imqtt/imqtt/store"
)

// errSettingsTODO: the Settings role is being written (issue 16).
var errSettingsTODO = errors.New("settings: not implemented yet")

func (s *Store) PutConvSettings(context.Context, store.ConvSettings) error { return errSettingsTODO }
func (s *Store) GetConvSettings(context.Context, string, string) (store.ConvSettings, error) {
	return store.ConvSettings{}, errSettingsTODO
}
func (s *Store) UserConvSettings(context.Context, string) ([]store.ConvSettings, error) {
	return nil, errSettingsTODO
}
func (s *Store) ConvSettingsFor(context.Context, string) ([]store.ConvSettings, error) {
	return nil, errSettingsTODO
}
func (s *Store) DeleteUserConvSettings(context.Context, string) error { return errSettingsTODO }
