package liveview

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"text/template"
)

// The pages are text/template, not html/template: everything they insert
// is either our own asset (checked by TestAssetsStayInTheirElements) or
// JSON from encoding/json, which escapes '<', '>' and '&', so nothing
// inserted can close the script element it sits in.
//
//go:embed assets
var assets embed.FS

type pageKind int

const (
	livePage pageKind = iota + 1
	reportPage
)

// pageArgs are what the page templates insert.
type pageArgs struct {
	CSS, JS string
	Data    string // JSON, or "null"
}

// render returns a page of kind with data (JSON-encoded) inline.
func render(kind pageKind, data any) ([]byte, error) {
	name, script := "live.html", "live.js"
	if kind == reportPage {
		name, script = "report.html", "report.js"
	}
	read := func(file string) (string, error) {
		b, err := assets.ReadFile("assets/" + file)
		return string(b), err
	}
	var args pageArgs
	var parts [4]string
	for i, file := range []string{name, "style.css", "charts.js", script} {
		s, err := read(file)
		if err != nil {
			return nil, fmt.Errorf("liveview: %w", err)
		}
		parts[i] = s
	}
	args.CSS, args.JS = parts[1], parts[2]+"\n"+parts[3]
	js, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("liveview: encode the page's data: %w", err)
	}
	args.Data = string(js)
	tmpl, err := template.New(name).Parse(parts[0])
	if err != nil {
		return nil, fmt.Errorf("liveview: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, &args); err != nil {
		return nil, fmt.Errorf("liveview: %w", err)
	}
	return b.Bytes(), nil
}

// WriteReport writes the HTML report of a demo run: report is encoded as
// JSON (it is the demo's Report, whose fields report.js reads) and drawn in
// the browser with the live page's charts. The page is one file, with its
// scripts, styles and data inline: it opens from disk without a network.
func WriteReport(w io.Writer, report any) error {
	b, err := render(reportPage, report)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, bytes.NewReader(b))
	return err
}
