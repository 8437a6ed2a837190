package media

import "testing"

// TestFillDefaults: zero Options take the Default constants, which
// cmd/imqttd's --media-max-* flags default to; a setting given is kept.
func TestFillDefaults(t *testing.T) {
	var o Options
	o.fill()
	if o.MaxImage != DefaultMaxImage || o.MaxAudio != DefaultMaxAudio || o.MaxVideo != DefaultMaxVideo || o.MaxFile != DefaultMaxFile ||
		o.InlineMax != DefaultInlineMax || o.ThumbSide != DefaultThumbSide || o.ThumbPixels != DefaultThumbPixels ||
		o.HLSTimeout != DefaultHLSTimeout || o.Workers != DefaultWorkers || o.Logger == nil {
		t.Fatalf("filled %+v", o)
	}
	o = Options{MaxVideo: 10, Workers: 1}
	o.fill()
	if o.MaxVideo != 10 || o.Workers != 1 {
		t.Fatalf("a setting given was replaced: %+v", o)
	}
}
