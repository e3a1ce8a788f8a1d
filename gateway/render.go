package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
	"github.com/medimint/medimint/index"
)

// Rendering limits.
const (
	thumbnailSize     = 128 // longest side of a thumbnail without viewport
	maxViewport       = 8192
	defaultJPEGQualty = 90
)

// rendered is WADO-RS Retrieve Rendered (PS3.18 10.4.1.1.4) of an
// instance, and the thumbnail of an instance, series or study (the middle
// instance stands for a series or study).
func (s *Server) rendered(level index.Level, thumb bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		t, err := pathTarget(c, level)
		if err != nil {
			return err
		}
		if level < index.Instance {
			refs, err := s.instances(c.UserContext(), t)
			if err != nil {
				return err
			}
			r := refs[len(refs)/2]
			t = target{level: index.Instance, study: r.StudyInstanceUID, series: r.SeriesInstanceUID, sopID: r.SOPInstanceUID}
		}
		return s.render(c, t, 1, thumb)
	}
}

// renderedFrames is Retrieve Rendered (or thumbnail) of one frame.
func (s *Server) renderedFrames(thumb bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		t, err := pathTarget(c, index.Instance)
		if err != nil {
			return err
		}
		list, err := parseFrameList(c.Params("frames"))
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return problemf(http.StatusBadRequest, "frames are rendered one at a time")
		}
		return s.render(c, t, list[0], thumb)
	}
}

// renderParams are the query parameters of PS3.18 8.3.5.1 the server
// honours.
type renderParams struct {
	window    *voiWindow
	vw, vh    int // viewport; 0: native size
	quality   int
	ignored   []string
	mediaType string
}

type voiWindow struct {
	center, width float64
	function      string // LINEAR, LINEAR_EXACT or SIGMOID
}

func parseRenderParams(c *fiber.Ctx, thumb bool) (renderParams, error) {
	p := renderParams{quality: defaultJPEGQualty}
	if thumb {
		p.vw, p.vh = thumbnailSize, thumbnailSize
	}
	var err error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		key, val := strings.ToLower(string(k)), string(v)
		switch key {
		case "window":
			f := strings.Split(val, ",")
			if len(f) < 2 || len(f) > 3 {
				err = problemf(http.StatusBadRequest, "window must be center,width,function")
				return
			}
			cw, e1 := strconv.ParseFloat(strings.TrimSpace(f[0]), 64)
			ww, e2 := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
			if e1 != nil || e2 != nil || ww <= 0 || math.IsNaN(cw) || math.IsInf(cw, 0) || math.IsInf(ww, 0) {
				err = problemf(http.StatusBadRequest, "window center and width must be numbers, the width positive")
				return
			}
			fn := "LINEAR"
			if len(f) == 3 {
				fn = strings.ToUpper(strings.TrimSpace(f[2]))
				fn = strings.ReplaceAll(fn, "-", "_")
			}
			if fn != "LINEAR" && fn != "LINEAR_EXACT" && fn != "SIGMOID" {
				err = problemf(http.StatusBadRequest, "window function must be linear, linear-exact or sigmoid")
				return
			}
			p.window = &voiWindow{cw, ww, fn}
		case "viewport":
			f := strings.Split(val, ",")
			if len(f) != 2 {
				err = problemf(http.StatusBadRequest, "viewport must be width,height")
				return
			}
			w, e1 := strconv.Atoi(strings.TrimSpace(f[0]))
			h, e2 := strconv.Atoi(strings.TrimSpace(f[1]))
			if e1 != nil || e2 != nil || w < 1 || h < 1 || w > maxViewport || h > maxViewport {
				err = problemf(http.StatusBadRequest, "viewport width and height must be integers from 1 to %d", maxViewport)
				return
			}
			p.vw, p.vh = w, h
		case "quality":
			q, e := strconv.Atoi(val)
			if e != nil || q < 1 || q > 100 {
				err = problemf(http.StatusBadRequest, "quality must be an integer from 1 to 100")
				return
			}
			p.quality = q
		default:
			p.ignored = append(p.ignored, key)
		}
	})
	return p, err
}

// render answers with frame (1-based) of instance t as image/jpeg or
// image/png. Only native (uncompressed) grayscale and RGB/YBR_FULL pixel
// data is rendered; the frame is read alone, through its offsets.
func (s *Server) render(c *fiber.Ctx, t target, frame int, thumb bool) error {
	typ, ok := acceptsAny(parseAccept(c.Get(fiber.HeaderAccept)), mediaJPEG, mediaPNG)
	if !ok {
		return problemf(http.StatusNotAcceptable, "rendered images are available as image/jpeg or image/png")
	}
	p, err := parseRenderParams(c, thumb)
	if err != nil {
		return err
	}
	p.mediaType = typ
	ctx := c.UserContext()
	fi, err := s.frameInfo(ctx, t)
	if err != nil {
		return err
	}
	if fi.FrameLength == 0 {
		return problemf(http.StatusNotAcceptable, "instance %s is stored compressed (%s); only uncompressed images are rendered", t.sopID, fi.TransferSyntaxUID)
	}
	if frame > frameCount(&fi) {
		return problemf(http.StatusNotFound, "frame %d of an instance with %d frames", frame, frameCount(&fi))
	}
	base := s.baseURL(c)
	for _, k := range p.ignored {
		warn(c, base, fmt.Sprintf("The %s parameter is not supported; it was ignored.", k))
	}
	if notModified(c, etag([]byte(t.sopID), []byte(fi.BlobKey), []byte(strconv.Itoa(frame)), c.Request().URI().QueryString(), []byte(typ), []byte(strconv.FormatBool(thumb)))) {
		return nil
	}
	ds, err := s.instanceDataset(ctx, t)
	if err != nil {
		return err
	}
	ra, err := s.pipe.ReaderAt(ctx, fi.InstanceRef)
	if err != nil {
		return err
	}
	fs := &frameSource{fi: fi, ra: ra}
	r, err := fs.open(frame - 1)
	if err != nil {
		return err
	}
	pix := make([]byte, fi.FrameLength) // one frame, not a study
	if _, err := io.ReadFull(r, pix); err != nil {
		return fmt.Errorf("gateway: read frame %d of %s: %w", frame, t.sopID, err)
	}
	big := fi.TransferSyntaxUID == dicom.ExplicitVRBigEndian
	img, err := decodeFrame(ds, pix, big, p.window)
	if err != nil {
		return problemf(http.StatusNotAcceptable, "instance %s cannot be rendered: %v", t.sopID, err)
	}
	if p.vw > 0 {
		img = fit(img, p.vw, p.vh)
	}
	var out bytes.Buffer
	if typ == mediaPNG {
		err = png.Encode(&out, img)
	} else {
		err = jpeg.Encode(&out, img, &jpeg.Options{Quality: p.quality})
	}
	if err != nil {
		return fmt.Errorf("gateway: encode rendered %s: %w", t.sopID, err)
	}
	c.Set(fiber.HeaderContentType, typ)
	return c.Send(out.Bytes())
}

// decodeFrame turns native pixel data into an 8-bit image: grayscale
// through the Modality LUT (rescale) and a VOI window (the one asked for,
// else the data set's first, else the frame's range), colour as RGB.
func decodeFrame(ds *dicom.Dataset, pix []byte, big bool, win *voiWindow) (image.Image, error) {
	rows, _ := ds.Uint(tag.Rows)
	cols, _ := ds.Uint(tag.Columns)
	bits, _ := ds.Uint(tag.BitsAllocated)
	stored, ok := ds.Uint(tag.BitsStored)
	if !ok {
		stored = bits
	}
	spp, ok := ds.Uint(tag.SamplesPerPixel)
	if !ok {
		spp = 1
	}
	signed, _ := ds.Uint(tag.PixelRepresentation)
	planar, _ := ds.Uint(tag.PlanarConfiguration)
	photo := strings.TrimSpace(ds.String(tag.PhotometricInterpretation))
	w, h := int(cols), int(rows)
	if w == 0 || h == 0 {
		return nil, fmt.Errorf("no Rows or Columns")
	}
	if bits != 8 && bits != 16 {
		return nil, fmt.Errorf("%d bits allocated", bits)
	}
	bpp := int(bits / 8)
	if len(pix) < w*h*int(spp)*bpp {
		return nil, fmt.Errorf("frame shorter than its dimensions")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	sample := func(i int) float64 {
		var v uint32
		if bpp == 1 {
			v = uint32(pix[i])
		} else {
			v = uint32(order.Uint16(pix[2*i:]))
		}
		v &= 1<<stored - 1
		if signed == 1 && v&(1<<(stored-1)) != 0 {
			return float64(int64(v) - int64(1)<<stored)
		}
		return float64(v)
	}
	switch photo {
	case "MONOCHROME1", "MONOCHROME2":
		slope, intercept := 1.0, 0.0
		if v, ok := firstFloat(ds, tag.RescaleSlope); ok && v != 0 {
			slope = v
		}
		if v, ok := firstFloat(ds, tag.RescaleIntercept); ok {
			intercept = v
		}
		vals := make([]float64, w*h)
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range vals {
			v := sample(i)*slope + intercept
			vals[i] = v
			lo, hi = min(lo, v), max(hi, v)
		}
		if win == nil {
			cw, ok1 := firstFloat(ds, tag.WindowCenter)
			ww, ok2 := firstFloat(ds, tag.WindowWidth)
			fn := strings.ToUpper(strings.TrimSpace(ds.String(tag.VOILUTFunction)))
			if fn == "" {
				fn = "LINEAR"
			}
			if ok1 && ok2 && ww > 0 {
				win = &voiWindow{cw, ww, fn}
			} else {
				win = &voiWindow{center: (lo + hi) / 2, width: max(hi-lo, 1), function: "LINEAR_EXACT"}
			}
		}
		img := image.NewGray(image.Rect(0, 0, w, h))
		for i, v := range vals {
			y := win.apply(v)
			if photo == "MONOCHROME1" {
				y = 255 - y
			}
			img.Pix[i] = y
		}
		return img, nil
	case "RGB", "YBR_FULL":
		if spp != 3 {
			return nil, fmt.Errorf("%s with %d samples per pixel", photo, spp)
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		shift := uint(0)
		if stored > 8 {
			shift = uint(stored - 8)
		}
		at := func(px, s int) uint8 {
			i := 3*px + s
			if planar == 1 {
				i = s*w*h + px
			}
			return uint8(uint32(sample(i)) >> shift)
		}
		for px := 0; px < w*h; px++ {
			r, g, b := at(px, 0), at(px, 1), at(px, 2)
			if photo == "YBR_FULL" {
				r, g, b = color.YCbCrToRGB(r, g, b)
			}
			img.Pix[4*px], img.Pix[4*px+1], img.Pix[4*px+2], img.Pix[4*px+3] = r, g, b, 255
		}
		return img, nil
	}
	return nil, fmt.Errorf("photometric interpretation %q is not rendered", photo)
}

// apply maps a modality value through the window to 0..255 (PS3.3
// C.11.2.1.2).
func (w *voiWindow) apply(x float64) uint8 {
	var y float64
	switch w.function {
	case "SIGMOID":
		y = 255 / (1 + math.Exp(-4*(x-w.center)/w.width))
	case "LINEAR_EXACT":
		switch {
		case x <= w.center-w.width/2:
			y = 0
		case x > w.center+w.width/2:
			y = 255
		default:
			y = ((x-w.center)/w.width + 0.5) * 255
		}
	default:
		ww := max(w.width, 1)
		switch {
		case x <= w.center-0.5-(ww-1)/2:
			y = 0
		case x > w.center-0.5+(ww-1)/2:
			y = 255
		case ww == 1:
			y = 255
		default:
			y = ((x-(w.center-0.5))/(ww-1) + 0.5) * 255
		}
	}
	return uint8(math.Round(min(max(y, 0), 255)))
}

func firstFloat(ds *dicom.Dataset, t dicom.Tag) (float64, bool) {
	e := ds.Get(t)
	if e == nil {
		return 0, false
	}
	vs := e.Strings()
	if len(vs) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(vs[0]), 64)
	return f, err == nil
}

// fit scales img to fit within vw×vh, keeping its aspect ratio, by
// averaging the source pixels under each target pixel (or repeating them
// when enlarging).
func fit(img image.Image, vw, vh int) image.Image {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	scale := min(float64(vw)/float64(sw), float64(vh)/float64(sh))
	tw, th := max(1, int(math.Round(float64(sw)*scale))), max(1, int(math.Round(float64(sh)*scale)))
	if tw == sw && th == sh {
		return img
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := 0; y < th; y++ {
		y0 := y * sh / th
		y1 := max((y+1)*sh/th, y0+1)
		for x := 0; x < tw; x++ {
			x0 := x * sw / tw
			x1 := max((x+1)*sw/tw, x0+1)
			var r, g, bl, n uint32
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, _ := img.At(b.Min.X+sx, b.Min.Y+sy).RGBA()
					r, g, bl, n = r+cr>>8, g+cg>>8, bl+cb>>8, n+1
				}
			}
			i := dst.PixOffset(x, y)
			dst.Pix[i], dst.Pix[i+1], dst.Pix[i+2], dst.Pix[i+3] = uint8(r/n), uint8(g/n), uint8(bl/n), 255
		}
	}
	return dst
}
