// Package dashboard holds Optio's browser dashboard: one HTML page, its
// style sheet and its script, embedded in the relay's binary so that it
// works with no internet and no build step. The throughput chart is drawn
// on a canvas by the script itself (see static/app.js).
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files are the dashboard's files, index.html at the root.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only on an invalid path; "static" is valid.
		return static
	}
	return sub
}
