package gateway

import (
	"regexp"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/index"
)

// Capabilities is the document GET (or OPTIONS) {base}/ answers with: what
// the server supports, generated from its own registries (the router's
// routes, the codec's transfer syntaxes, the index's attributes), so that
// it cannot drift from the code.
type Capabilities struct {
	Server    string             `json:"server"`
	Version   string             `json:"version"`
	BaseURL   string             `json:"baseURL"`
	Services  []ServiceResources `json:"services"`
	MediaType MediaTypes         `json:"mediaTypes"`
	// TransferSyntaxes: Stored are those STOW-RS accepts (the codec reads
	// them); Transcoded are those WADO-RS converts between (uncompressed);
	// anything stored can be retrieved as stored (transfer-syntax=*).
	TransferSyntaxes struct {
		Stored     []TransferSyntax `json:"stored"`
		Transcoded []string         `json:"transcoded"`
	} `json:"transferSyntaxes"`
	Query QueryCapabilities `json:"query"`
}

// ServiceResources lists the resources of one service.
type ServiceResources struct {
	Service   string     `json:"service"` // STOW-RS, WADO-RS, QIDO-RS, DELETE, Capabilities
	Resources []Resource `json:"resources"`
}

// Resource is one method on one URI template.
type Resource struct {
	Method string `json:"method"`
	Path   string `json:"path"` // URI template relative to the base URL
}

// MediaTypes lists the media types per service.
type MediaTypes struct {
	StoreRequest   []string          `json:"storeRequest"`
	StoreResponse  []string          `json:"storeResponse"`
	Retrieve       []string          `json:"retrieve"`
	Metadata       []string          `json:"metadata"`
	Frames         map[string]string `json:"frames"` // transfer syntax -> media type of its frames
	Rendered       []string          `json:"rendered"`
	Search         []string          `json:"search"`
	Errors         string            `json:"errors"`
	DuplicateRules string            `json:"duplicates"`
}

// TransferSyntax names one transfer syntax.
type TransferSyntax struct {
	UID  string `json:"uid"`
	Name string `json:"name"`
}

// QueryCapabilities describes QIDO-RS.
type QueryCapabilities struct {
	Parameters     []string            `json:"parameters"`
	DefaultReturn  map[string][]string `json:"defaultReturn"` // level -> keywords returned by default
	MaxResults     int                 `json:"maxResults"`
	FuzzyMatching  bool                `json:"fuzzyMatching"`
	RenderedParams []string            `json:"renderedParameters"`
}

var routeParam = regexp.MustCompile(`:([a-z]+)`)

func (s *Server) capabilities(c *fiber.Ctx) error {
	var doc Capabilities
	doc.Server = "medimint"
	doc.Version = s.cfg.Version
	doc.BaseURL = s.baseURL(c)

	byService := map[string][]Resource{}
	seen := map[Resource]bool{}
	for _, r := range s.app.GetRoutes(true) {
		rel, ok := strings.CutPrefix(r.Path, s.cfg.BasePath)
		if !ok || r.Method == fiber.MethodHead {
			continue
		}
		if rel == "" {
			rel = "/"
		}
		res := Resource{Method: r.Method, Path: routeParam.ReplaceAllString(strings.ReplaceAll(rel, "*", "{path}"), "{$1}")}
		if seen[res] {
			continue
		}
		seen[res] = true
		svc := serviceOf(r.Method, rel)
		byService[svc] = append(byService[svc], res)
	}
	for _, svc := range []string{"STOW-RS", "WADO-RS", "QIDO-RS", "DELETE", "Capabilities"} {
		if rs := byService[svc]; len(rs) > 0 {
			doc.Services = append(doc.Services, ServiceResources{Service: svc, Resources: rs})
		}
	}

	doc.MediaType = MediaTypes{
		StoreRequest:  []string{`multipart/related; type="application/dicom"`, `multipart/related; type="application/dicom+json"`},
		StoreResponse: []string{mediaDICOMJSON},
		Retrieve: []string{`multipart/related; type="application/dicom"; transfer-syntax=*`,
			`multipart/related; type="application/dicom"; transfer-syntax={uncompressed}`, `application/dicom (single instance)`},
		Metadata:       []string{mediaDICOMJSON},
		Frames:         map[string]string{},
		Rendered:       []string{mediaJPEG, mediaPNG},
		Search:         []string{mediaDICOMJSON},
		Errors:         ProblemContentType,
		DuplicateRules: "set by the storage pipeline: reject (0x0111), overwrite, or accept identical resends",
	}
	for _, ts := range dicom.TransferSyntaxes() {
		doc.TransferSyntaxes.Stored = append(doc.TransferSyntaxes.Stored, TransferSyntax{ts.UID, ts.Name})
		if ts.Encapsulated {
			doc.MediaType.Frames[ts.UID] = frameMediaType(ts.UID)
		} else if !ts.Deflated {
			doc.MediaType.Frames[ts.UID] = mediaOctetStream
		}
	}
	doc.TransferSyntaxes.Transcoded = slices.Clone(uncompressed)

	doc.Query = QueryCapabilities{
		Parameters:     supportedParams,
		DefaultReturn:  map[string][]string{},
		MaxResults:     index.DefaultMaxResults,
		FuzzyMatching:  true,
		RenderedParams: []string{"window", "viewport", "quality"},
	}
	for _, lv := range []index.Level{index.Study, index.Series, index.Instance} {
		var kws []string
		for _, t := range index.DefaultFields(lv) {
			kws = append(kws, keyword(t))
		}
		doc.Query.DefaultReturn[strings.ToLower(lv.String())] = kws
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.JSON(doc)
}

// serviceOf classifies a route by the service it belongs to.
func serviceOf(method, rel string) string {
	switch method {
	case fiber.MethodPost:
		return "STOW-RS"
	case fiber.MethodDelete:
		return "DELETE"
	case fiber.MethodOptions:
		return "Capabilities"
	}
	if rel == "/" {
		return "Capabilities"
	}
	if strings.HasSuffix(rel, "/studies") || strings.HasSuffix(rel, "/series") || strings.HasSuffix(rel, "/instances") {
		return "QIDO-RS"
	}
	return "WADO-RS"
}
