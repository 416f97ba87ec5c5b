package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// FuzzListParams checks the limit and cursor parsing of every list: no input panics, a cursor
// is accepted only when it carries a canonical id of the list's type, and every cursor the
// API hands out is accepted.
func FuzzListParams(f *testing.F) {
	f.Add("", int32(0), true)
	f.Add(storage.EncodeCursor("6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11"), int32(50), true)
	f.Add(storage.EncodeCursor("urn:uuid:6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11"), int32(2), true)
	f.Add(storage.EncodeCursor("{6F1C2A52-8A4E-4B8E-9A52-2D3F7C1E0B11}"), int32(2), true)
	f.Add(storage.EncodeCursor("42"), int32(1000), false)
	f.Add(storage.EncodeCursor("+42"), int32(1001), false)
	f.Add(storage.EncodeCursor("0042"), int32(-1), false)
	f.Add("!!!", int32(1), false)
	f.Fuzz(func(t *testing.T, cursor string, limit int32, uuidList bool) {
		key, canonical := int64Key, func(id string) string {
			n, _ := strconv.ParseInt(id, 10, 64)
			return strconv.FormatInt(n, 10)
		}
		if uuidList {
			key, canonical = uuidKey, func(id string) string { return uuid.MustParse(id).String() }
		}
		lp, err := listParamsOf(&limit, &cursor, key)
		if err != nil {
			p, _ := problemFor(err)
			if p.Status != http.StatusBadRequest || len(p.Errors) != 1 || (p.Errors[0].Field != "limit" && p.Errors[0].Field != "cursor") {
				t.Fatalf("refused with %+v, want a 400 naming limit or cursor", p)
			}
			return
		}
		if lp.Limit < 0 || lp.Limit > storage.MaxPageLimit || lp.Limit != int(limit) {
			t.Fatalf("limit %d accepted as %d", limit, lp.Limit)
		}
		if cursor == "" {
			return
		}
		id, err := storage.CursorKey(lp.Cursor)
		if err != nil || canonical(id) != id {
			t.Fatalf("cursor %q accepted carrying %q (err %v), not a canonical id", cursor, id, err)
		}
		again := storage.EncodeCursor(id)
		if _, err := listParamsOf(&limit, &again, key); err != nil {
			t.Fatalf("the API's own cursor %q for %q is refused: %v", again, id, err)
		}
	})
}

// TestForgedCursorsAreBadRequests sends every list cursors the API never hands out, ids in
// other spellings among them, which PostgreSQL would refuse inside the query: each is a 400
// naming the cursor.
func TestForgedCursorsAreBadRequests(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		upper := strings.ToUpper(fx.site.ID)
		lists := map[string][]string{
			"/api/v1/sites": {"urn:uuid:" + fx.site.ID, "{" + fx.site.ID + "}", strings.ReplaceAll(fx.site.ID, "-", ""), upper, "42"},
			"/api/v1/sites/" + fx.site.ID + "/endpoints": {"urn:uuid:" + fx.endpoint.ID, upper},
			"/api/v1/paths":    {"+1", "01", "0", fx.site.ID},
			"/api/v1/policies": {"1e3", " 1"},
			"/api/v1/audit":    {"-1", "9223372036854775808"},
			"/api/v1/tokens":   {"0x10"},
		}
		for path, ids := range lists {
			for _, id := range ids {
				token := a.viewer
				if path == "/api/v1/tokens" {
					token = a.admin
				}
				p := a.do(http.MethodGet, path+"?cursor="+url.QueryEscape(storage.EncodeCursor(id)), token, nil).problem(t, http.StatusBadRequest)
				if len(p.Errors) != 1 || p.Errors[0].Field != "cursor" {
					t.Errorf("%s with a cursor for %q: %+v, want a 400 naming cursor", path, id, p)
				}
			}
		}
		// Not base64 at all, and padded base64.
		a.do(http.MethodGet, "/api/v1/sites?cursor="+url.QueryEscape("***"), a.viewer, nil).problem(t, http.StatusBadRequest)
		a.do(http.MethodGet, "/api/v1/sites?cursor="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(fx.site.ID+"x"))), a.viewer, nil).problem(t, http.StatusBadRequest)
	})
}

// FuzzCreatePolicyBody sends arbitrary bodies to POST /api/v1/policies, the write with the most
// to parse (CIDRs, port ranges, protocol, action): no body gets a 5xx or crashes the server,
// every response matches openapi.yaml, a refusal is a problem naming a field and stores
// nothing, and a 201 stores exactly one policy.
func FuzzCreatePolicyBody(f *testing.F) {
	db := storagetest.Open(f, storage.DialectSQLite)
	store := storage.NewStore(db)
	srv, err := New(Config{DB: db, Logger: slog.New(slog.DiscardHandler), Collector: collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)})})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	ctx := context.Background()
	_, operator, err := store.Tokens().Create(ctx, "fuzz-operator", storage.RoleOperator)
	if err != nil {
		f.Fatal(err)
	}
	site := storage.Site{Name: "fuzz"}
	if err := store.Sites().Create(ctx, &site); err != nil {
		f.Fatal(err)
	}
	ends := []storage.Endpoint{{SiteID: site.ID, Name: "a", Address: "192.0.2.1"}, {SiteID: site.ID, Name: "b", Address: "192.0.2.2"}}
	for i := range ends {
		if err := store.Endpoints().Create(ctx, &ends[i]); err != nil {
			f.Fatal(err)
		}
	}
	path := storage.Path{Name: "p", LocalEndpointID: ends[0].ID, RemoteEndpointID: ends[1].ID}
	if err := store.Paths().Create(ctx, &path); err != nil {
		f.Fatal(err)
	}
	pathID := strconv.FormatInt(path.ID, 10)
	for _, seed := range []string{
		`{"name":"voip","priority":10,"match":{"protocol":17,"dst_cidr":"10.20.0.0/16","dst_ports":[{"from":5060,"to":5061}]},"action":{"type":"prefer_path","path_id":` + pathID + `}}`,
		`{"name":"drop","priority":0,"enabled":false,"match":{"src_cidr":"2001:db8::/32","src_ports":[{"from":0,"to":65535}]},"action":{"type":"drop"}}`,
		`{"name":"x","priority":1,"match":{"dst_ports":[{"from":90,"to":80}]},"action":{"type":"drop"}}`,
		`{"name":"x","priority":1,"match":{"dst_cidr":"10.0.0.0/33"},"action":{"type":"drop"}}`,
		`{"name":"x","priority":1e2,"match":{},"action":{"type":"prefer_path","path_id":9223372036854775807}}`,
		`{"name":"x","priority":1,"match":{"protocol":-1},"action":{"type":"drop"}}}`,
		`{"name":"\u0000","priority":1,"action":{"type":"drop"}}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var before, after int64
		count := func(n *int64) {
			if err := store.Gorm().Model(&storage.Policy{}).Count(n).Error; err != nil {
				t.Fatal(err)
			}
		}
		count(&before)
		req := httptest.NewRequest(http.MethodPost, "http://patronus.test/api/v1/policies", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+operator)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		resp := apiResponse{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		req.Body = io.NopCloser(bytes.NewReader(body))
		checkResponse(t, req, resp)
		count(&after)
		switch {
		case resp.Status >= 500:
			t.Fatalf("body %q: %s", body, resp)
		case resp.Status == http.StatusCreated:
			if after != before+1 {
				t.Fatalf("a 201 stored %d policies", after-before)
			}
		default:
			p := resp.problem(t, resp.Status)
			if len(p.Errors) == 0 || p.Errors[0].Field == "" {
				t.Fatalf("body %q: the problem names no field: %s", body, resp)
			}
			if after != before {
				t.Fatalf("body %q: refused with %d yet stored %d policies", body, resp.Status, after-before)
			}
		}
	})
}
