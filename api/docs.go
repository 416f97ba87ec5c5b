package api

import (
	"io/fs"

	"github.com/gin-gonic/gin"
	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5/static"
	"github.com/swaggest/swgui/v5emb"

	"github.com/patronus-sdwan/patronus/storage"
)

// docsBasePath is where the documentation page lives; its assets are served beneath it.
const docsBasePath = "/docs/"

// DocsHandler serves the API documentation: a Swagger UI page at /docs that renders the
// specification found at specPath (normally "/openapi.yaml"), and the page's scripts, styles and
// icons at /docs/{asset}. Every asset is embedded in the binary (Swagger UI 5 from
// github.com/swaggest/swgui), so the page works without network access. Mount it on both GET
// /docs and GET /docs/:asset; an unknown asset is a 404 problem.
func DocsHandler(specPath string) gin.HandlerFunc {
	ui := v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "Patronus API",
		SwaggerJSON: specPath,
		BasePath:    docsBasePath,
		// Keep the bearer token across page reloads while exploring the API.
		SettingsUI: map[string]string{"persistAuthorization": "true"},
	})
	return func(c *gin.Context) {
		if asset := c.Param("asset"); asset != "" && !docsAssetExists(asset) {
			writeError(c, newError(storage.ErrNotFound, "no documentation asset %q", asset))
			return
		}
		ui.ServeHTTP(c.Writer, c.Request)
	}
}

// docsAssetExists reports whether the embedded Swagger UI has the named file; the files are
// stored gzip-compressed and served decompressed to clients that do not accept gzip.
func docsAssetExists(name string) bool {
	if !fs.ValidPath(name) {
		return false
	}
	for _, candidate := range []string{name, name + ".gz"} {
		if info, err := fs.Stat(static.FS, candidate); err == nil && !info.IsDir() {
			return true
		}
	}
	return false
}
