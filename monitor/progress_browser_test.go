package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/internal/testenv"
	"github.com/taskgen/taskgen/runtime"
	"github.com/taskgen/taskgen/runtime/driver"
)

// TestBrowser_Progress opens a stepped task's page and the task list in two
// tabs of chromium and sees both bars follow the task's runtime.Progress
// calls without a reload, then the final state.
func TestBrowser_Progress(t *testing.T) {
	testenv.SkipIfShort(t, "browser tests are not short")
	page := newBrowser(t)
	list, cancelList := chromedp.NewContext(page)
	t.Cleanup(cancelList)
	require.NoError(t, chromedp.Do(list, chromedp.Navigate("about:blank")))

	name := driver.NewID()
	s := newStepper()
	e, def := newProgressEnv(t, "memory://"+name, "memory://"+name, s)
	srv := e.url
	res, err := runtime.NewStub[int](def).With(runtime.WithApp(e.app)).Send(context.Background(), &emailArgs{email: "list.csv"})
	require.NoError(t, err)
	id := res.ID()
	e.waitState(id, StateStarted)

	within(t, page, 10*time.Second, chromedp.Navigate(srv+"/task/"+id), chromedp.WaitVisible(chromedp.CSS("#task-fields")))
	within(t, list, 10*time.Second, chromedp.Navigate(srv+"/tasks"), chromedp.WaitVisible(chromedp.CSS("#tasks")))
	for _, tab := range []context.Context{page, list} {
		eval[bool](t, tab, "window.__noReload = true")
	}
	taskBar := `(document.querySelector('#task-progress .progress') || {getAttribute: function () { return null; }})`
	rowBar := `(document.querySelector('tr[data-uuid="` + id + `"] .progress') || {getAttribute: function () { return null; }})`
	for i := 1; i <= 3; i++ {
		s.do(t, i)
		cur := `.getAttribute('data-current') === '` + string(rune('0'+i)) + `'`
		within(t, page, 10*time.Second, waitJS(taskBar+cur, 10*time.Second))
		within(t, list, 10*time.Second, waitJS(rowBar+cur, 10*time.Second))
		value := eval[float64](t, page, `document.querySelector('#task-progress progress').value`)
		require.InDelta(t, 100*float64(i)/3, value, 1e-6, "task page bar at step %d", i)
		label := eval[string](t, page, `document.querySelector('#task-progress .progress-label').textContent`)
		require.Contains(t, label, "row "+string(rune('0'+i)))
		require.Equal(t, "PROGRESS", eval[string](t, page, `document.querySelector('#task-state').textContent`))
		require.InDelta(t, 100*float64(i)/3, eval[float64](t, list, `document.querySelector('tr[data-uuid="`+id+`"] progress').value`), 1e-6)
	}
	s.finish <- struct{}{}
	within(t, page, 10*time.Second, waitJS(`document.querySelector('#task-state').textContent === 'SUCCESS'`, 10*time.Second))
	require.True(t, eval[bool](t, page, `document.querySelector('#task-progress .progress') === null`), "the bar stays after the task ended")
	within(t, list, 10*time.Second, waitJS(`document.querySelector('tr[data-uuid="`+id+`"] .progress') === null`, 10*time.Second))
	for _, tab := range []context.Context{page, list} {
		require.True(t, eval[bool](t, tab, "window.__noReload === true"), "the page was reloaded")
	}
}
