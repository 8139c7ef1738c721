// Package ui renders the broker's pages (method choice, errors, the demo
// relying party) in German and English from embedded templates, catalogues
// and CSS. No framework, no build step; a directory can replace the embedded
// files for theming.
package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

//go:embed templates assets i18n
var embedded embed.FS

// Languages the pages are written in; the first is the default.
var Languages = []string{"de", "en"}

var matcher = language.NewMatcher([]language.Tag{language.German, language.English})

// UI holds the parsed templates per language.
type UI struct {
	pages  map[string]*template.Template // lang → all pages
	texts  map[string]map[string]string  // lang → catalogue
	assets fs.FS
	demo   bool
	logger *slog.Logger
}

// New loads templates, catalogues and assets from fsys (nil: the embedded
// files). demo marks every page as a demo.
func New(fsys fs.FS, demo bool, logger *slog.Logger) (*UI, error) {
	if fsys == nil {
		fsys = embedded
	}
	u := &UI{pages: map[string]*template.Template{}, texts: map[string]map[string]string{}, demo: demo, logger: logger}
	assets, err := fs.Sub(fsys, "assets")
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	u.assets = assets
	for _, lang := range Languages {
		cat, err := loadCatalogue(fsys, lang)
		if err != nil {
			return nil, err
		}
		u.texts[lang] = cat
		t := template.New("").Funcs(template.FuncMap{
			"t": func(key string, args ...any) (string, error) {
				s, ok := cat[key]
				if !ok {
					return "", fmt.Errorf("ui: no text %q in %s", key, lang)
				}
				if len(args) > 0 {
					return fmt.Sprintf(s, args...), nil
				}
				return s, nil
			},
		})
		if _, err := t.ParseFS(fsys, "templates/*.html"); err != nil {
			return nil, fmt.Errorf("ui: templates: %w", err)
		}
		u.pages[lang] = t
	}
	return u, nil
}

func loadCatalogue(fsys fs.FS, lang string) (map[string]string, error) {
	b, err := fs.ReadFile(fsys, path.Join("i18n", lang+".json"))
	if err != nil {
		return nil, fmt.Errorf("ui: catalogue %s: %w", lang, err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("ui: catalogue %s: %w", lang, err)
	}
	return m, nil
}

// Pages lists the page templates (for tests that render each one).
func (u *UI) Pages() []string {
	var names []string
	for _, t := range u.pages[Languages[0]].Templates() {
		if strings.HasSuffix(t.Name(), ".html") && t.Name() != "layout.html" {
			names = append(names, strings.TrimSuffix(t.Name(), ".html"))
		}
	}
	sort.Strings(names)
	return names
}

// Lang picks the page language: an explicit choice (a ui_locales value or
// ?lang=), else the Accept-Language header, else German.
func Lang(r *http.Request, explicit ...string) string {
	if l := r.URL.Query().Get("lang"); l == "de" || l == "en" {
		return l
	}
	for _, e := range explicit {
		if l := FromLocales(e); l != "" {
			return l
		}
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return Languages[0]
	}
	_, idx, conf := matcher.Match(tags...)
	if conf == language.No {
		return Languages[0]
	}
	return Languages[idx]
}

// FromLocales picks the first supported language of a space-separated
// list of language tags (OIDC ui_locales), or "" when none is supported.
func FromLocales(locales string) string {
	for _, tag := range strings.Fields(locales) {
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if base == "de" || base == "en" {
			return base
		}
	}
	return ""
}

// Page is what every template receives.
type Page struct {
	Lang string
	// Other is the other language, for the switch link.
	Other string
	Demo  bool
	// Path is the current path.
	Path string
	// LangURL is the language switch link: the current path and, for a
	// GET, its query (a logout ticket, a login's parameters), with lang
	// set to Other. A page answering a POST links to its path only: the
	// form cannot be sent again by a link.
	LangURL string
	// TitleKey is the catalogue key of the page title.
	TitleKey string
	Data     any
}

// Render writes page with status. Rendering goes to a buffer first so a
// template error becomes a clean 500, not half a page.
func (u *UI) Render(w http.ResponseWriter, r *http.Request, status int, page, lang string, data any) {
	t, ok := u.pages[lang]
	if !ok {
		t, lang = u.pages[Languages[0]], Languages[0]
	}
	other := "en"
	if lang == "en" {
		other = "de"
	}
	langURL := r.URL.Path + "?lang=" + other
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		q := r.URL.Query()
		q.Set("lang", other)
		langURL = r.URL.Path + "?" + q.Encode()
	}
	var buf bytes.Buffer
	err := t.ExecuteTemplate(&buf, page+".html", Page{Lang: lang, Other: other, Demo: u.demo, Path: r.URL.Path, LangURL: langURL,
		TitleKey: page + ".title", Data: data})
	if err != nil {
		u.logger.Error("render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Assets serves /assets/ (CSS, icons, the small scripts pages need).
func (u *UI) Assets() http.Handler {
	fsrv := http.FileServerFS(u.assets)
	return http.StripPrefix("/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	}))
}

// Text returns a catalogue text for code that is not a template (the key
// itself when it is missing, which the catalogue test prevents).
func (u *UI) Text(lang, key string) string {
	if s, ok := u.texts[lang][key]; ok {
		return s
	}
	return key
}
