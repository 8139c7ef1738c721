package browsertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// AxeEnv names the variable holding the path of axe-core's axe.min.js
// (installed from npm by .ci/run into the git-ignored .ci/node/). Unset,
// accessibility tests skip with a message; set but unreadable, they fail.
const AxeEnv = "TRUSTBROKER_TEST_AXE"

// Axe injects axe-core into pages and checks them.
type Axe struct{ src string }

// NewAxe loads axe-core from $TRUSTBROKER_TEST_AXE or skips the test.
func NewAxe(t *testing.T) *Axe {
	t.Helper()
	p := os.Getenv(AxeEnv)
	if p == "" {
		t.Skipf("accessibility tests skipped: set %s to axe-core's axe.min.js, e.g. after npm install --prefix .ci/node axe-core@4", AxeEnv)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s=%s: %v", AxeEnv, p, err)
	}
	return &Axe{src: string(b)}
}

// AxeViolation is one failed axe rule with the elements it failed on.
type AxeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// Run injects axe-core into the current page (once per document) and
// returns every violation of the WCAG 2.0/2.1 A and AA rules and axe's
// best practices.
func (a *Axe) Run(ctx context.Context) ([]AxeViolation, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === "object"`))
	if err != nil {
		return nil, err
	}
	if !loaded {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](a.src+"\n;undefined")); err != nil {
			return nil, fmt.Errorf("inject axe-core: %w", err)
		}
	}
	const run = `axe.run(document, {
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
  resultTypes: ["violations"]
}).then(r => r.violations.map(v => ({
  id: v.id, impact: v.impact || "", help: v.help,
  nodes: v.nodes.map(n => ({target: String(n.target), html: n.html, summary: n.failureSummary || ""}))
})))`
	return chromedp.Run(ctx, chromedp.Evaluate[[]AxeViolation](run, chromedp.EvalAwaitPromise))
}

// Check fails the test for violations of impact serious or critical on the
// current page and logs the minor and moderate ones.
func (a *Axe) Check(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	vs, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range vs {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprintf("%s %s (%s)", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", " ")))
		}
		msg := fmt.Sprintf("axe %s on %s: %s [%s]:\n  %s", v.Impact, name, v.ID, v.Help, strings.Join(where, "\n  "))
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}
