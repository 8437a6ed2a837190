package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // decoders the thumbnailer understands
	"image/jpeg"
	_ "image/png"
	"io"

	_ "golang.org/x/image/bmp"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

// Thumbnails are JPEG: the only pure-Go WebP encoders on the module proxy
// encode lossless WebP only, which for a photo at thumbnail size came out 5
// to 8 times larger than JPEG at quality 75 (measured on the Go image test
// photos) — the opposite of a compact thumbnail.
const (
	thumbType    = "image/jpeg"
	thumbQuality = 75
	// previewSide and previewQuality make the preview that rides inline in
	// a message when the thumbnail is too big for that.
	previewSide    = 96
	previewQuality = 60
)

var errTooManyPixels = errors.New("image has too many pixels to thumbnail")

// thumbnail decodes the image in r and returns it scaled to fit side × side
// (never enlarged), flattened on white, turned upright by its EXIF
// orientation, with the original's displayed width and height.
func thumbnail(r io.ReadSeeker, side int, maxPixels int64) (*image.RGBA, int, int, error) {
	head := make([]byte, 128<<10)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, 0, err
	}
	orientation := exifOrientation(head[:n])
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, 0, 0, err
	}
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode image header: %w", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels || cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, 0, 0, fmt.Errorf("%w: %dx%d", errTooManyPixels, cfg.Width, cfg.Height)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, 0, 0, err
	}
	src, _, err := image.Decode(r)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("decode image: %w", err)
	}
	thumb := scale(src, side)
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	if orientation >= 5 {
		w, h = h, w
	}
	return orient(thumb, orientation), w, h, nil
}

// scale fits src into side × side on a white background, keeping its aspect
// ratio and never enlarging it. A large reduction first averages k × k
// blocks (a box filter: every source pixel counts, so no aliasing, and it
// costs one pass), leaving CatmullRom at most a 4× reduction: straight from
// a 24-megapixel photo CatmullRom alone takes a second.
func scale(src image.Image, side int) *image.RGBA {
	b := src.Bounds()
	w, h := fit(b.Dx(), b.Dy(), side)
	if k := min(b.Dx()/(2*w), b.Dy()/(2*h)); k >= 2 {
		src = shrink(src, k)
		b = src.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	return dst
}

// shrink averages k × k blocks of src. JPEG's YCbCr is averaged plane by
// plane, as it is; anything else is converted to RGBA first.
func shrink(src image.Image, k int) image.Image {
	b := src.Bounds()
	if y, ok := src.(*image.YCbCr); ok {
		dst := image.NewYCbCr(image.Rect(0, 0, b.Dx()/k, b.Dy()/k), y.SubsampleRatio)
		shrinkPlane(dst.Y, dst.YStride, dst.Rect.Dx(), dst.Rect.Dy(), y.Y[y.YOffset(b.Min.X, b.Min.Y):], y.YStride, b.Dx(), b.Dy(), k, 1)
		// The chroma planes shrink by the same factor.
		dw, dh := chromaSize(dst.Rect, dst.SubsampleRatio)
		sw, sh := chromaSize(b, y.SubsampleRatio)
		off := y.COffset(b.Min.X, b.Min.Y)
		shrinkPlane(dst.Cb, dst.CStride, dw, dh, y.Cb[off:], y.CStride, sw, sh, k, 1)
		shrinkPlane(dst.Cr, dst.CStride, dw, dh, y.Cr[off:], y.CStride, sw, sh, k, 1)
		return dst
	}
	rgba, ok := src.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Bounds(), src, b.Min, draw.Src)
		b = rgba.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/k, b.Dy()/k))
	shrinkPlane(dst.Pix, dst.Stride, dst.Rect.Dx(), dst.Rect.Dy(), rgba.Pix[rgba.PixOffset(b.Min.X, b.Min.Y):], rgba.Stride, b.Dx(), b.Dy(), k, 4)
	return dst
}

// chromaSize is the size of the chroma planes of a YCbCr image on r.
func chromaSize(r image.Rectangle, ratio image.YCbCrSubsampleRatio) (w, h int) {
	halfW, halfH := (r.Max.X+1)/2-r.Min.X/2, (r.Max.Y+1)/2-r.Min.Y/2
	quarterW := (r.Max.X+3)/4 - r.Min.X/4
	switch ratio {
	case image.YCbCrSubsampleRatio422:
		return halfW, r.Dy()
	case image.YCbCrSubsampleRatio420:
		return halfW, halfH
	case image.YCbCrSubsampleRatio440:
		return r.Dx(), halfH
	case image.YCbCrSubsampleRatio411:
		return quarterW, r.Dy()
	case image.YCbCrSubsampleRatio410:
		return quarterW, halfH
	}
	return r.Dx(), r.Dy()
}

// shrinkPlane writes into dst (dw × dh samples of px bytes, each byte
// averaged on its own) the means of k × k blocks of src (sw × sh samples);
// blocks that run past the source's edge repeat its last row or column.
func shrinkPlane(dst []byte, dstStride, dw, dh int, src []byte, srcStride, sw, sh, k, px int) {
	sums := make([]uint32, dw*px)
	n := uint32(k * k)
	for y := 0; y < dh; y++ {
		clear(sums)
		for r := 0; r < k; r++ {
			row := src[min(y*k+r, sh-1)*srcStride:]
			for x := 0; x < dw; x++ {
				for j := 0; j < k; j++ {
					s := min(x*k+j, sw-1) * px
					for c := 0; c < px; c++ {
						sums[x*px+c] += uint32(row[s+c])
					}
				}
			}
		}
		out := dst[y*dstStride:]
		for i, s := range sums {
			out[i] = byte((s + n/2) / n)
		}
	}
}

// fit returns w × h scaled down to fit side × side (at least 1 × 1).
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, (h*side+w/2)/w)
	}
	return max(1, (w*side+h/2)/h), side
}

// orient turns img upright according to an EXIF orientation (1–8):
// 2 mirrored, 3 rotated 180°, 4 flipped, 5 transposed, 6 needs 90°
// clockwise, 7 transversed, 8 needs 90° counter-clockwise.
func orient(img *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return img
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for dy := 0; dy < dh; dy++ {
		for dx := 0; dx < dw; dx++ {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-dx, dy
			case 3:
				sx, sy = w-1-dx, h-1-dy
			case 4:
				sx, sy = dx, h-1-dy
			case 5:
				sx, sy = dy, dx
			case 6:
				sx, sy = dy, h-1-dx
			case 7:
				sx, sy = w-1-dy, h-1-dx
			case 8:
				sx, sy = w-1-dy, dx
			}
			si, di := img.PixOffset(sx, sy), dst.PixOffset(dx, dy)
			copy(dst.Pix[di:di+4], img.Pix[si:si+4])
		}
	}
	return dst
}

// exifOrientation finds the Orientation tag (0x0112) of a JPEG's EXIF
// segment in its head; 1 (upright) when there is none or it is malformed.
func exifOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return 1
		}
		marker := b[i+1]
		if marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7) {
			i += 2 // markers without a length
			continue
		}
		if marker == 0xda || marker == 0xd9 { // start of scan: no EXIF after it
			return 1
		}
		size := int(binary.BigEndian.Uint16(b[i+2:]))
		if size < 2 || i+2+size > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+size]
		if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		i += 2 + size
	}
	return 1
}

// tiffOrientation reads the Orientation tag from IFD0 of a TIFF header.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for k := 0; k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		if typ := bo.Uint16(t[e+2:]); typ != 3 { // SHORT
			return 1
		}
		if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
			return o
		}
		return 1
	}
	return 1
}

// encodeJPEG encodes img at quality q.
func encodeJPEG(img image.Image, q int) ([]byte, error) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
