package gallery_test

import (
	"bytes"
	"context"
	"errors"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/example/gallery"
	"github.com/taskgen/taskgen/example/internal/fakes"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/tasktest"
)

// fakeStore points the tasks at a fake store holding a.png (400×300) and
// b.png (300×600).
func fakeStore(t *testing.T) *fakes.Store {
	t.Helper()
	st, err := fakes.NewStore()
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	require.NoError(t, st.PutPhoto("a.png", 400, 300, color.NRGBA{200, 100, 50, 255}))
	require.NoError(t, st.PutPhoto("b.png", 300, 600, color.NRGBA{50, 100, 200, 255}))
	gallery.Configure(gallery.Store{URL: st.URL})
	return st
}

// TestHandler_GallerySendsTheChord: /gallery sends one RenderThumbnail per
// photo, in one group, then BuildGallery with their results in photo order
// and the title; X-Task-Id is the chord's result (the body).
func TestHandler_GallerySendsTheChord(t *testing.T) {
	st := fakeStore(t)
	kit := tasktest.New(t, gallery.RegisterTasks)
	srv := httptest.NewServer(gallery.Handler(kit.App.Logger()))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/gallery?title=Road+Trip&photo=a.png&photo=b.png&width=100")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	id := resp.Header.Get("X-Task-Id")

	msgs := kit.Workflow(id)
	require.Len(t, msgs, 3)
	require.Equal(t, []string{"gallery.render_thumbnail", "gallery.render_thumbnail", "gallery.build_gallery"},
		[]string{msgs[0].Task, msgs[1].Task, msgs[2].Task})
	require.NotEmpty(t, msgs[0].GroupID)
	require.Equal(t, msgs[0].GroupID, msgs[1].GroupID, "the header is one group")
	require.Equal(t, []int{0, 1, -1}, []int{msgs[0].GroupIndex, msgs[1].GroupIndex, msgs[2].GroupIndex})
	require.Equal(t, id, msgs[2].ID)

	renders := tasktest.Calls(kit, gallery.RenderThumbnail)
	require.Equal(t, []gallery.RenderThumbnailArgs{{Photo: "a.png", Width: 100}, {Photo: "b.png", Width: 100}},
		[]gallery.RenderThumbnailArgs{renders[0].Args, renders[1].Args})
	thumbs := []gallery.Thumbnail{
		{Photo: "a.png", URL: st.URL + "/thumbs/a-100.png", Width: 100, Height: 75},
		{Photo: "b.png", URL: st.URL + "/thumbs/b-100.png", Width: 100, Height: 200},
	}
	built := tasktest.Calls(kit, gallery.BuildGallery)
	require.Len(t, built, 1)
	require.Equal(t, gallery.BuildGalleryArgs{Thumbs: thumbs, Title: "Road Trip"}, built[0].Args,
		"the body got the thumbnails in photo order, then its bound title")

	g, err := runtime.NewAsyncResult[gallery.Gallery](kit.App, id).Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, gallery.Gallery{Title: "Road Trip", URL: st.URL + "/galleries/road-trip.html", Photos: 2}, g)
	html := string(st.Data("galleries/road-trip.html"))
	require.Contains(t, html, "<title>Road Trip</title>")
	require.Less(t, strings.Index(html, thumbs[0].URL), strings.Index(html, thumbs[1].URL))
	img, err := png.Decode(bytes.NewReader(st.Data("thumbs/b-100.png")))
	require.NoError(t, err)
	require.Equal(t, 100, img.Bounds().Dx())
	require.Equal(t, 200, img.Bounds().Dy())
}

func TestHandler_RejectsBadRequests(t *testing.T) {
	kit := tasktest.NewWith(t, []tasktest.Option{tasktest.RecordOnly()}, gallery.RegisterTasks)
	srv := httptest.NewServer(gallery.Handler(kit.App.Logger()))
	defer srv.Close()
	for _, q := range []string{
		"title=x",                        // no photo
		"photo=a.png",                    // no title
		"title=x&photo=../secret",        // not a plain name
		"title=x&photo=.hidden",          // dot file
		"title=x&photo=a.png&width=0",    // too narrow
		"title=x&photo=a.png&width=wide", // not a number
	} {
		resp, err := http.Get(srv.URL + "/gallery?" + q)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, q)
	}
	require.Empty(t, kit.Enqueued("gallery.render_thumbnail"))
}

// TestWorkflow_MissingPhotoFailsTheChord: a photo the store does not have
// fails its thumbnail at once (a 404 is not retried), so BuildGallery
// never runs and the chord's result is Celery's ChordError.
func TestWorkflow_MissingPhotoFailsTheChord(t *testing.T) {
	fakeStore(t)
	kit := tasktest.New(t, gallery.RegisterTasks)
	res, err := gallery.Workflow("Lost", []string{"a.png", "missing.png"}, 64).Delay(context.Background())
	require.NoError(t, err)
	_, err = res.Get(context.Background())
	var te *runtime.TaskError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, "ChordError", te.Exception.Type)
	require.Contains(t, te.Error(), "404")
	require.Len(t, kit.Enqueued("gallery.render_thumbnail"), 2, "no retry")
	require.Empty(t, kit.Enqueued("gallery.build_gallery"))
}

// TestGroup_Thumbnails: the header alone, as a group: its GroupResult
// gives the thumbnails in order, and can be restored by id.
func TestGroup_Thumbnails(t *testing.T) {
	fakeStore(t)
	kit := tasktest.New(t, gallery.RegisterTasks)
	ctx := context.Background()
	g, err := runtime.Group(gallery.RenderThumbnail.Sig("b.png", 30), gallery.RenderThumbnail.Sig("a.png", 40)).Delay(ctx)
	require.NoError(t, err)
	thumbs, err := g.Get(ctx)
	require.NoError(t, err)
	require.Len(t, thumbs, 2)
	require.Equal(t, [2]int{30, 60}, [2]int{thumbs[0].Width, thumbs[0].Height})
	require.Equal(t, [2]int{40, 30}, [2]int{thumbs[1].Width, thumbs[1].Height})
	n, err := g.Completed(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	again, err := runtime.RestoreGroup[gallery.Thumbnail](ctx, kit.App, g.ID())
	require.NoError(t, err)
	got, err := again.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, thumbs, got)
}
