// Package server is the HTTP service of "tiercache serve": users read
// through a tiercache.Cache in front of a userdb.DB, updated in the database
// and then invalidated in the cache.
//
// Routes (Go 1.22 patterns on a private http.ServeMux; nothing is registered on
// http.DefaultServeMux):
//
//	GET  /users/{id}    the user as JSON; 404 for an unknown id (cached
//	                    negatively), 400 for an id that is not a positive integer
//	PUT  /users/{id}    body {"name": ..., "email": ...} (at most 64 KiB,
//	                    UTF-8, strings without control characters; 400 with
//	                    a message otherwise): updates the row, then deletes
//	                    the id from the cache
//	GET  /healthz       {"status", "db", "redis"}: 200, or 503 if the
//	                    database does not answer
//	     /debug/pprof/  the net/http/pprof handlers
//	     /metrics       Config.Metrics, when set (a Prometheus handler)
//	GET  /debug/stats, /debug/tiercache, /debug/tiercache/data
//	                    Config.Live, when set: the cache's counters as JSON
//	                    and the live page (package liveview)
//
// Error bodies are {"error": message}; a message quotes at most
// redact.MaxQuoted bytes of what the request sent.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tiercache/tiercache"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/redact"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/demo/userdb"
	"github.com/tiercache/tiercache/cmd/tiercache/internal/liveview"
)

// MaxBody bounds the body of a PUT.
const MaxBody = 64 << 10

// ShutdownTimeout bounds how long Run waits for requests in flight after its
// context is done.
const ShutdownTimeout = 10 * time.Second

// Config is what the service needs. DB and Cache are required.
type Config struct {
	DB    *userdb.DB
	Cache *tiercache.Cache[userdb.User]
	// RedisPing checks the shared tier for /healthz; nil means the cache
	// has none (reported as "off").
	RedisPing func(ctx context.Context) error
	// Metrics, if set, is served at /metrics. It is the seam for a
	// Prometheus handler; without it the route does not exist.
	Metrics http.Handler
	// Live, if set, serves /debug/stats and the live page; it should watch
	// Cache. Without it those routes do not exist.
	Live *liveview.View
	// Logger receives request and error logs. Nil means silent.
	Logger *slog.Logger
}

// Handler serves the routes of the package comment. It is safe for
// concurrent use.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	load tiercache.LoaderFunc[userdb.User]
}

var _ http.Handler = (*Handler)(nil)

// New returns the service's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.DB == nil || cfg.Cache == nil {
		return nil, errors.New("server: Config.DB and Config.Cache are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: log, mux: http.NewServeMux(), load: load(cfg.DB)}
	h.mux.HandleFunc("GET /users/{id}", h.getUser)
	h.mux.HandleFunc("PUT /users/{id}", h.putUser)
	h.mux.HandleFunc("GET /healthz", h.health)
	h.mux.HandleFunc("/debug/pprof/", pprof.Index)
	h.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	h.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	h.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	h.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if cfg.Metrics != nil {
		h.mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Live != nil {
		cfg.Live.Register(h.mux)
	}
	return h, nil
}

// ServeHTTP routes the request and logs it at Debug level.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(sw, r)
	h.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
		slog.String("method", r.Method), slog.String("path", clip(r.URL.Path)),
		slog.Int("status", sw.status), slog.Duration("latency", time.Since(start)))
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := userdb.ParseID(id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	u, err := h.cfg.Cache.Get(r.Context(), id, h.load)
	// A failed load is logged by the cache (at Warn, once per load, not
	// per caller sharing it): the handler logs only other failures, so
	// that a request costs one record at most.
	var le *loadError
	logged := errors.As(err, &le)
	switch {
	case err == nil:
	case errors.Is(err, tiercache.ErrNotFound):
		writeError(w, http.StatusNotFound, "no user "+id)
		return
	case tiercache.Degraded(err):
		// A usable answer while the database fails: say so, serve it.
		if !logged {
			h.log.WarnContext(r.Context(), "serving a degraded value", "id", id, "err", err)
		}
		w.Header().Set("Warning", `110 - "stale: the database is failing"`)
	case r.Context().Err() != nil:
		return // the client is gone
	default:
		if !logged {
			h.log.ErrorContext(r.Context(), "read user", "id", id, "err", err)
		}
		writeError(w, http.StatusServiceUnavailable, "the database is unavailable")
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// loadError marks a failure of the database in a load: the cache has
// logged it.
type loadError struct{ err error }

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// load is db.Load with its failures (not "no such user") marked.
func load(db *userdb.DB) tiercache.LoaderFunc[userdb.User] {
	return func(ctx context.Context, id string) (userdb.User, error) {
		u, err := db.Load(ctx, id)
		if err != nil && !errors.Is(err, tiercache.ErrNotFound) {
			err = &loadError{err: err}
		}
		return u, err
	}
}

// update is the body of a PUT.
type update struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// validate checks the fields as the API documents them. Text no database
// should store is refused here, as the client's mistake: a control
// character (PostgreSQL refuses NUL, and would answer an error that reads
// as an outage) or, checked on the raw body by decodeUpdate, bytes that are
// not UTF-8 (encoding/json would store them as U+FFFD).
func (u *update) validate() error {
	switch {
	case u.Name == "" || len(u.Name) > 200:
		return errors.New(`"name" must be 1 to 200 bytes`)
	case len(u.Email) < 3 || len(u.Email) > 254:
		return errors.New(`"email" must be 3 to 254 bytes`)
	case strings.ContainsFunc(u.Name, unicode.IsControl):
		return errors.New(`"name" must not contain control characters (NUL, newline, ...)`)
	case strings.ContainsFunc(u.Email, unicode.IsControl):
		return errors.New(`"email" must not contain control characters (NUL, newline, ...)`)
	case !strings.Contains(u.Email, "@"):
		return errors.New(`"email" must contain '@'`)
	}
	return nil
}

// decodeUpdate reads and checks the body of a PUT. Its error is the message
// for the client, in the API's terms (a field name, not a Go type), quoting
// at most redact.MaxQuoted bytes of the body.
func decodeUpdate(w http.ResponseWriter, r *http.Request) (update, int, error) {
	var u update
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return u, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxBody)
		}
		return u, http.StatusBadRequest, errors.New("body not read")
	}
	if !utf8.Valid(body) {
		return u, http.StatusBadRequest, errors.New("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return u, http.StatusBadRequest, jsonError(err)
	}
	if dec.More() {
		return u, http.StatusBadRequest, errors.New("invalid JSON body: more than one value")
	}
	if err := u.validate(); err != nil {
		return u, http.StatusBadRequest, err
	}
	return u, 0, nil
}

// jsonError turns an encoding/json error into a message for the client.
func jsonError(err error) error {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New(`empty body: want a JSON object {"name": ..., "email": ...}`)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("%s must be a string, not a JSON %s", redact.Quote(typ.Field), typ.Value)
	case errors.As(err, &typ):
		return fmt.Errorf(`the body must be a JSON object {"name": ..., "email": ...}, not a JSON %s`, typ.Value)
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON body at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	}
	// encoding/json has no type for an unknown field: its message quotes the
	// field whole.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f, qerr := strconv.Unquote(field); qerr == nil {
			field = f
		}
		return fmt.Errorf(`unknown field %s: want only "name" and "email"`, redact.Quote(field))
	}
	return fmt.Errorf("invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func (h *Handler) putUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := userdb.ParseID(id)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, code, err := decodeUpdate(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	u, err := h.cfg.DB.Update(r.Context(), n, body.Name, body.Email)
	switch {
	case errors.Is(err, userdb.ErrNotFound):
		writeError(w, http.StatusNotFound, "no user "+id)
		return
	case err != nil:
		if r.Context().Err() == nil {
			h.log.ErrorContext(r.Context(), "update user", "id", id, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the database is unavailable")
		}
		return
	}
	// The row has changed: invalidate even if the client has gone away.
	if err := h.cfg.Cache.Delete(context.WithoutCancel(r.Context()), id); err != nil {
		// The update stands; other instances may serve the old value until
		// its TTL (the cache's L1 TTL bounds it in this one).
		h.log.WarnContext(r.Context(), "invalidate user after update", "id", id, "err", err)
	}
	writeJSON(w, http.StatusOK, u)
}

// Health is the body of /healthz.
type Health struct {
	// Status is "ok", "degraded" (the shared tier is down: the service
	// answers from L1 and the database) or "unavailable" (the database is
	// down).
	Status string `json:"status"`
	DB     string `json:"db"`
	Redis  string `json:"redis"`
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	res := Health{Status: "ok", DB: "ok", Redis: "off"}
	code := http.StatusOK
	if h.cfg.RedisPing != nil {
		res.Redis = "ok"
		if err := h.cfg.RedisPing(ctx); err != nil {
			res.Status, res.Redis = "degraded", "error: "+err.Error()
		}
	}
	if err := h.cfg.DB.Ping(ctx); err != nil {
		res.Status, res.DB = "unavailable", "error: "+err.Error()
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) { liveview.WriteJSON(w, code, v) }

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// clip returns s, or its first redact.MaxQuoted bytes and its length if it
// is longer: for the request log, which must not copy a 500 KB path.
func clip(s string) string {
	if len(s) <= redact.MaxQuoted {
		return s
	}
	return redact.Quote(s)
}

// statusWriter records the status code of a response for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (pprof's
// profile and trace extend their write deadline through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Run serves h on ln until ctx is done, then shuts down gracefully: it stops
// accepting, waits up to ShutdownTimeout for requests in flight, and returns.
// It closes ln. Run returns nil after a clean shutdown.
func Run(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed once Shutdown has begun
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
