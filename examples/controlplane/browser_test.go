package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
	"github.com/hatchery-dev/hatchery/provider"
	"github.com/hatchery-dev/hatchery/provider/fake"
	"github.com/hatchery-dev/hatchery/provision"
	"github.com/hatchery-dev/hatchery/store"
)

// browse opens url in a new headless Chromium, 1280 px wide, in time zone
// zone ("" for the machine's), and returns the tab's context, with a
// timeout for the test's steps.
func browse(t *testing.T, url, zone string) context.Context {
	t.Helper()
	chromium := testenv.LookPath(t, "chromium")
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
	require.NoError(t, chromedp.Do(browser, chromedp.EmulateViewport(1280, 900)))
	if zone != "" {
		_, err := chromedp.Call(browser, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
		require.NoError(t, err)
	}
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(url)))
	ctx, cancelTimeout := context.WithTimeout(browser, 90*time.Second)
	t.Cleanup(cancelTimeout)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#tenants`))))
	return ctx
}

// waitPage polls the page until the JavaScript expression cond is true.
func waitPage(t *testing.T, ctx context.Context, s *service, cond, what string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	require.NoError(t, err, "%s; service log:\n%s", what, s.stderr.String())
}

// evaluate returns the value of a JavaScript expression on the page.
func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// watchStatuses makes the page note every status it shows for tenant id,
// in window.seen[id].
func watchStatuses(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	evaluate[bool](t, ctx, `
		window.seen = window.seen || {};
		window.seen["`+id+`"] = [];
		(function () {
			function sample() {
				var r = document.querySelector('#tenants tr[data-id="`+id+`"]'), s = window.seen["`+id+`"];
				if (r && s[s.length - 1] !== r.dataset.status) s.push(r.dataset.status);
			}
			sample();
			setInterval(sample, 50);
		})();
		true`)
}

// The status page in a real headless Chromium: it shows the tenants, and
// it follows them without a reload. A tenant provisioned after the page
// loaded appears and goes from cloud_init to ready in place; one made
// with the page's own button appears too.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	// Servers boot for 3 s, longer than the page's 2 s refresh: the page
	// cannot miss cloud_init.
	s := startService(t, "-addr", "127.0.0.1:0", "-dir", t.TempDir(), "-boot-delay", "3s", "-settle", "100ms")

	const first, second = "3f2a9c1e-2d4b-4c1a-9e8f-0a1b2c3d4e5f", "9d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+first, nil))
	ctx := browse(t, s.URL+"/", "")

	// The page as served: the first tenant's row, rendered on the server.
	firstRows := evaluate[int](t, ctx, `document.querySelectorAll('#tenants tr[data-id="`+first+`"]').length`)
	require.Equal(t, 1, firstRows, "the tenant is on the page")

	// From here on the page must not reload: a reload would lose this
	// marker. It also notes every status it shows for the second tenant.
	evaluate[bool](t, ctx, `window.noReload = true`)
	watchStatuses(t, ctx, second)

	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+second, nil))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#new`))))

	// Three tenants, all ready, without a reload.
	waitPage(t, ctx, s, `document.querySelectorAll('#tenants tr[data-status="ready"]').length === 3 && window.seen["`+second+`"].slice(-1)[0] === "ready"`,
		"the page should show three ready tenants")

	noReload := evaluate[bool](t, ctx, `window.noReload === true`)
	seen := evaluate[[]string](t, ctx, `window.seen["`+second+`"]`)
	ids := evaluate[[]string](t, ctx, `Array.from(document.querySelectorAll('#tenants tr'), function (tr) { return tr.dataset.id })`)
	shown := evaluate[[]string](t, ctx, `Array.from(document.querySelectorAll('#tenants td.id'), function (td) { return td.textContent })`)
	counts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#counts`)))
	require.NoError(t, err)

	assert.True(t, noReload, "the page refreshed its table without reloading")
	require.NotEmpty(t, seen)
	assert.Equal(t, "ready", seen[len(seen)-1])
	// 3 s of cloud_init span at least one refresh; a loaded machine may
	// show injecting_secrets instead. Either way, not ready at first.
	assert.GreaterOrEqual(t, len(seen), 2, "the second tenant's status changed in place: %v", seen)
	assert.Contains(t, []string{"cloud_init", "injecting_secrets"}, seen[0], "seen: %v", seen)
	require.Len(t, ids, 3)
	assert.Equal(t, second, ids[1], "newest first: the button's tenant, the second, the first")
	assert.Equal(t, first, ids[2])
	assert.Equal(t, []string{ids[0][:8], second[:8], first[:8]}, shown, "the IDs, shortened")
	assert.Equal(t, "3 ready", counts)

	// The API agrees with the page.
	var list tenantList
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants?status=ready", &list))
	assert.Len(t, list.Tenants, 3)
}

// The page's actions in a real headless Chromium. A tenant whose create
// the provider refused for good (its quota) shows failed, with a Retry
// button; a click retries it and the page follows it to ready. A ready
// tenant's Deprovision asks for a second click, then the page shows it
// deleted. Times are the browser's local time; IDs do not wrap at 1280 px.
// The page is saved as a PNG in the test's directory, and at
// $HATCHERY_SCREENSHOT when that is set.
func TestStatusPageActionsInBrowser(t *testing.T) {
	t.Parallel()
	const failing, ready, refused = "5b1d0c2e-8f7a-4e6b-9c5d-4a3b2c1d0e9f", "c0ffee00-1234-4abc-8def-0123456789ab", "e7a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b"
	var mu sync.Mutex
	refusedOnce := map[string]bool{}
	quota := func(name string) fake.Faults {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range []string{failing, refused} {
			if name == provision.DefaultServerName(id) && !refusedOnce[id] {
				refusedOnce[id] = true
				return fake.Faults{CreateErr: fmt.Errorf("fake: %w", provider.ErrQuota)}
			}
		}
		return fake.Faults{}
	}
	s := startServiceWith(t, func(c *config) { c.faults = quota },
		"-addr", "127.0.0.1:0", "-dir", t.TempDir(), "-boot-delay", "3s", "-settle", "3s")

	var created answer
	require.Equal(t, http.StatusOK, call(t, "POST", s.URL+"/tenants/"+failing, &created))
	require.Equal(t, store.StatusFailed, created.Status, created.Result)
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+ready, nil))
	waitStatus(t, s, ready, store.StatusReady)

	const zone = "Asia/Kathmandu" // UTC+05:45: no machine's local time by chance
	ctx := browse(t, s.URL+"/", zone)
	row := `#tenants tr[data-id="` + failing + `"]`
	readyRow := `#tenants tr[data-id="` + ready + `"]`
	waitPage(t, ctx, s, `!!document.querySelector('`+row+` button[data-action="retry"]') && !!document.querySelector('`+readyRow+` button[data-action="deprovision"]')`,
		"the failed tenant has a Retry button, the ready one a Deprovision button")

	// The buttons of each status, and no other.
	buttons := func(sel string) []string {
		return evaluate[[]string](t, ctx, `Array.from(document.querySelectorAll('`+sel+` td.actions button'), function (b) { return b.textContent })`)
	}
	assert.Equal(t, []string{"Retry", "Replace", "Deprovision"}, buttons(row))
	assert.Equal(t, []string{"Rotate", "Replace", "Deprovision"}, buttons(readyRow))
	details, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+` td.details`)))
	require.NoError(t, err)
	assert.Contains(t, details, "account limit reached")
	assert.Contains(t, details, "no automatic retry")

	// Local time, one format.
	kathmandu, err := time.LoadLocation(zone)
	require.NoError(t, err)
	shownCreated, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+` td.time`)))
	require.NoError(t, err)
	assert.Equal(t, created.CreatedAt.In(kathmandu).Format("2006-01-02 15:04:05"), shownCreated)
	assert.Regexp(t, `^updated \d\d:\d\d:\d\d · times are local \(Asia/Kat`, evaluate[string](t, ctx, `document.getElementById("updated").textContent`)) // ICU's name may be the older Katmandu

	// Retry, clicked: the page follows the tenant to ready.
	watchStatuses(t, ctx, failing)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` button[data-action="retry"]`))))
	waitPage(t, ctx, s, `window.seen["`+failing+`"].slice(-1)[0] === "ready"`, "the retried tenant should end ready on the page")
	seen := evaluate[[]string](t, ctx, `window.seen["`+failing+`"]`)
	assert.Equal(t, "failed", seen[0], "seen: %v", seen)
	assert.GreaterOrEqual(t, len(seen), 3, "failed, then on its way (cloud_init for 3 s), then ready: %v", seen)
	assert.Contains(t, evaluate[string](t, ctx, `document.getElementById("notice").textContent`), "Retry "+failing[:8]+": retr")

	// Deprovision asks for a second click.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(readyRow+` button[data-action="deprovision"]`))))
	assert.Equal(t, "Confirm", evaluate[string](t, ctx, `document.querySelector('`+readyRow+` button[data-action="deprovision"]').textContent`))
	var rec tenant
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants/"+ready, &rec))
	assert.Equal(t, store.StatusReady, rec.Status, "one click does nothing yet")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(readyRow+` button[data-action="deprovision"]`))))
	waitPage(t, ctx, s, `document.querySelector('`+readyRow+`').dataset.status === "deleted"`, "the deprovisioned tenant should show deleted")
	assert.Empty(t, buttons(readyRow), "no action for a deleted tenant")
	require.Equal(t, http.StatusOK, call(t, "GET", s.URL+"/tenants/"+ready, &rec))
	assert.Equal(t, store.StatusDeleted, rec.Status)

	// The sweep: a dry run, shown; nothing to delete, so nothing to confirm.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#sweep`))))
	waitPage(t, ctx, s, `!document.getElementById("sweep-panel").hidden`, "the sweep's dry run should show")
	summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#sweep-summary`)))
	require.NoError(t, err)
	assert.Equal(t, "Dry run: 1 server of this control plane listed, 0 that no tenant owns; nothing to delete.", summary)
	assert.True(t, evaluate[bool](t, ctx, `document.getElementById("sweep-confirm").hidden`))

	// More tenants for the picture: one failed for good, one on its way,
	// whose injection the page follows by its steps (inject reports the
	// steps of its one script when the script ends: during the 3 s that
	// the last step checks that the service stays active, the page shows
	// the cloud-init wait, step 1 of 10, done).
	require.Equal(t, http.StatusOK, call(t, "POST", s.URL+"/tenants/"+refused, nil))
	booting := newTestID(t)
	require.Equal(t, http.StatusAccepted, call(t, "POST", s.URL+"/tenants/"+booting, nil))
	waitPage(t, ctx, s, `document.querySelectorAll('#tenants tr').length === 4`, "four tenants")
	waitPage(t, ctx, s, `/^step \d+\/10 /.test(document.querySelector('#tenants tr[data-id="`+booting+`"] td.details').textContent)`,
		"the page should show the injection's steps, of ten")

	// At 1280 px: no ID wraps, nothing overflows.
	assert.True(t, evaluate[bool](t, ctx, `Array.from(document.querySelectorAll('#tenants td.id button')).every(function (b) { return b.getClientRects().length === 1 })`))
	assert.LessOrEqual(t, evaluate[int](t, ctx, `document.documentElement.scrollWidth`), 1280)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(t.TempDir(), "page.png"), png, 0o600))
	if path := os.Getenv("HATCHERY_SCREENSHOT"); path != "" {
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}
	assert.True(t, strings.HasPrefix(string(png), "\x89PNG"))
}
