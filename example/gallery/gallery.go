// Package gallery is the chord of taskgen's example: /gallery renders a
// thumbnail of each photo in parallel (RenderThumbnail, a group) and, once
// every thumbnail is done, builds an HTML page of them (BuildGallery, the
// chord's body, which gets the thumbnails in photo order). Photos,
// thumbnails and pages live in a store with a plain GET/PUT HTTP API; the
// tasks pass URLs, not image bytes, so results stay small.
package gallery

//go:generate go run github.com/taskgen/taskgen/cmd/taskgen

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"image"
	"image/color"
	_ "image/jpeg" // photos may be JPEG
	"image/png"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskgen/taskgen/runtime"
)

// Store is the HTTP store of photos, thumbnails and gallery pages:
// GET URL/name reads an object, PUT URL/name writes one.
type Store struct {
	URL string
	// Client sends the requests (default: a client with a 30 s timeout).
	Client *http.Client
}

var store atomic.Pointer[Store]

// Configure sets the store the tasks read and write; workers call it at
// start-up.
func Configure(s Store) {
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 30 * time.Second}
	}
	s.URL = strings.TrimRight(s.URL, "/")
	store.Store(&s)
}

// StoreError is a 5xx answer of the store (or 429); the tasks retry on it.
// Other non-2xx answers (a photo that does not exist) fail at once.
type StoreError struct {
	StatusCode int
	Body       string
}

func (e *StoreError) Error() string {
	return fmt.Sprintf("store answered %d: %s", e.StatusCode, e.Body)
}

// Thumbnail is a rendered thumbnail: what RenderThumbnail returns and
// BuildGallery takes.
type Thumbnail struct {
	Photo  string `json:"photo" msgpack:"photo"` // the photo's name in the store
	URL    string `json:"url" msgpack:"url"`     // where the thumbnail was written
	Width  int    `json:"width" msgpack:"width"`
	Height int    `json:"height" msgpack:"height"`
}

// Gallery is a built gallery page.
type Gallery struct {
	Title  string `json:"title" msgpack:"title"`
	URL    string `json:"url" msgpack:"url"` // the page in the store
	Photos int    `json:"photos" msgpack:"photos"`
}

// Workflow returns the gallery of photos as one chord: a RenderThumbnail
// of each photo, width pixels wide, in parallel, then BuildGallery with
// the thumbnails, in photo order, and title. If a thumbnail fails for
// good, BuildGallery does not run and the result is a ChordError.
func Workflow(title string, photos []string, width int) runtime.Signature[Gallery] {
	thumbs := make([]runtime.Signature[Thumbnail], len(photos))
	for i, p := range photos {
		thumbs[i] = RenderThumbnail.Sig(p, width)
	}
	return runtime.Chord(runtime.Group(thumbs...), BuildGallery.Partial(title))
}

// renderThumbnail reads photo from the store, scales it to width pixels
// (keeping its aspect ratio), writes it as thumbs/<photo>-<width>.png and
// returns where.
//
//task:name gallery.render_thumbnail
//task:queue images
//task:autoretry_for *StoreError
//task:retry_backoff
//task:max_retries 3
//task:time_limit 2m
func renderThumbnail(ctx context.Context, photo string, width int) (Thumbnail, error) {
	s, err := configured()
	if err != nil {
		return Thumbnail{}, err
	}
	if err := checkPhoto(photo); err != nil {
		return Thumbnail{}, err
	}
	if width < 1 || width > MaxWidth {
		return Thumbnail{}, fmt.Errorf("gallery: width %d out of range 1..%d", width, MaxWidth)
	}
	src, err := s.get(ctx, photo)
	if err != nil {
		return Thumbnail{}, err
	}
	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return Thumbnail{}, fmt.Errorf("gallery: photo %q: %w", photo, err)
	}
	thumb := scale(img, width)
	var buf bytes.Buffer
	if err := png.Encode(&buf, thumb); err != nil {
		return Thumbnail{}, err
	}
	name := fmt.Sprintf("thumbs/%s-%d.png", strings.TrimSuffix(photo, path.Ext(photo)), width)
	u, err := s.put(ctx, name, "image/png", buf.Bytes())
	if err != nil {
		return Thumbnail{}, err
	}
	b := thumb.Bounds()
	return Thumbnail{Photo: photo, URL: u, Width: b.Dx(), Height: b.Dy()}, nil
}

var page = template.Must(template.New("gallery").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1>
{{range .Thumbs}}<figure><img src="{{.URL}}" width="{{.Width}}" height="{{.Height}}" alt="{{.Photo}}"><figcaption>{{.Photo}}</figcaption></figure>
{{end}}</body></html>
`))

// buildGallery writes the HTML page of thumbs, titled title, as
// galleries/<title>.html and returns where. It is the chord's body: thumbs
// are the results of the RenderThumbnail calls, in order.
//
//task:name gallery.build_gallery
//task:queue images
//task:autoretry_for *StoreError
//task:retry_backoff
//task:max_retries 3
func buildGallery(ctx context.Context, thumbs []Thumbnail, title string) (Gallery, error) {
	s, err := configured()
	if err != nil {
		return Gallery{}, err
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, struct {
		Title  string
		Thumbs []Thumbnail
	}{title, thumbs}); err != nil {
		return Gallery{}, err
	}
	u, err := s.put(ctx, "galleries/"+slug(title)+".html", "text/html; charset=utf-8", buf.Bytes())
	if err != nil {
		return Gallery{}, err
	}
	return Gallery{Title: title, URL: u, Photos: len(thumbs)}, nil
}

// MaxWidth is the widest thumbnail RenderThumbnail renders.
const MaxWidth = 2048

// checkPhoto accepts the names of photos in the store's top level: letters,
// digits, '.', '_' and '-', not starting with '.'.
func checkPhoto(name string) error {
	ok := name != "" && len(name) <= 200 && name[0] != '.'
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}
	if !ok {
		return fmt.Errorf("gallery: bad photo name %q (letters, digits, . _ - only)", name)
	}
	return nil
}

func configured() (*Store, error) {
	s := store.Load()
	if s == nil {
		return nil, fmt.Errorf("gallery: no store configured (call gallery.Configure)")
	}
	return s, nil
}

func (s *Store) object(name string) string { return s.URL + "/" + (&url.URL{Path: name}).EscapedPath() }

func (s *Store) get(ctx context.Context, name string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.object(name), nil)
	if err != nil {
		return nil, err
	}
	return s.do(req, 64<<20)
}

func (s *Store) put(ctx context.Context, name, contentType string, data []byte) (string, error) {
	u := s.object(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", contentType)
	_, err = s.do(req, 4096)
	return u, err
}

func (s *Store) do(req *http.Request, limit int64) ([]byte, error) {
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode/100 == 2:
		return body, nil
	case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, &StoreError{StatusCode: resp.StatusCode, Body: string(bytes.TrimSpace(body))}
	default:
		return nil, fmt.Errorf("gallery: %s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
}

// scale returns img resized to width pixels wide (nearest neighbour).
func scale(img image.Image, width int) *image.NRGBA {
	b := img.Bounds()
	height := max(1, b.Dy()*width/max(1, b.Dx()))
	out := image.NewNRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			c := img.At(b.Min.X+x*b.Dx()/width, b.Min.Y+y*b.Dy()/height)
			out.Set(x, y, color.NRGBAModel.Convert(c))
		}
	}
	return out
}

// slug returns title as a file name: lower-case letters and digits, other
// runs as one dash.
func slug(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	if s == "" {
		return "gallery"
	}
	return s
}
