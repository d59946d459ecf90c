package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// The status page in a real headless Chromium: it shows the tenants, and
// it follows them without a reload. A tenant provisioned after the page
// loaded appears and goes from cloud_init to ready in place; one made
// with the page's own button appears too.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	chromium := testenv.LookPath(t, "chromium")
	// Servers boot for 3 s, longer than the page's 2 s refresh: the page
	// cannot miss cloud_init.
	s := startService(t, "-addr", "127.0.0.1:0", "-dir", t.TempDir(), "-boot-delay", "3s", "-settle", "100ms")

	const first, second = "3f2a9c1e-2d4b-4c1a-9e8f-0a1b2c3d4e5f", "9d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+first, nil))

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	// The browser lives as long as the context of the first Run, which
	// must not have a timeout of its own; later steps get one.
	browser, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(s.URL+"/")))
	ctx, cancelTimeout := context.WithTimeout(browser, 90*time.Second)
	t.Cleanup(cancelTimeout)

	// The page as served: the first tenant's row, rendered on the server.
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#tenants`))))
	firstRows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#tenants tr[data-id="`+first+`"]').length`))
	require.NoError(t, err)
	require.Equal(t, 1, firstRows, "the tenant is on the page")

	// From here on the page must not reload: a reload would lose this
	// marker. It also notes every status it shows for the second tenant.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`
		window.noReload = true;
		window.seen = [];
		setInterval(function () {
			var r = document.querySelector('#tenants tr[data-id="`+second+`"]');
			if (r && window.seen[window.seen.length - 1] !== r.dataset.status) window.seen.push(r.dataset.status);
		}, 50);
		true`))
	require.NoError(t, err)

	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+second, nil))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#new`))))

	// Three tenants, all ready, without a reload.
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](
		`document.querySelectorAll('#tenants tr[data-status="ready"]').length === 3 && window.seen[window.seen.length - 1] === "ready"`,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	require.NoError(t, err, "the page should show three ready tenants; service log:\n%s", s.stderr.String())

	noReload, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.noReload === true`))
	require.NoError(t, err)
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.seen`))
	require.NoError(t, err)
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#tenants tr td.id'), function (td) { return td.textContent })`))
	require.NoError(t, err)
	counts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#counts`)))
	require.NoError(t, err)

	assert.True(t, noReload, "the page refreshed its table without reloading")
	require.NotEmpty(t, seen)
	assert.Equal(t, "ready", seen[len(seen)-1])
	// 3 s of cloud_init span at least one refresh; a loaded machine may
	// show injecting_secrets instead. Either way, not ready at first.
	assert.GreaterOrEqual(t, len(seen), 2, "the second tenant's status changed in place: %v", seen)
	assert.Contains(t, []string{"cloud_init", "injecting_secrets"}, seen[0], "seen: %v", seen)
	assert.Len(t, ids, 3)
	assert.Contains(t, ids, first)
	assert.Contains(t, ids, second)
	assert.Equal(t, "3 ready", counts)

	// The API agrees with the page.
	var list tenantList
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants?status=ready", &list))
	assert.Len(t, list.Tenants, 3)
}
