package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// ServicesSetter is the part of a Backend that accepts services from other
// processes (tunnelmesh-dockerwatch) through PUT PathServices. A Backend without it answers PUT /v1/services with 404.
type ServicesSetter interface {
	// SetServices replaces owner's services. An error wrapping
	// ErrBadServices is answered with 400 and changes nothing.
	SetServices(owner string, svcs []api.Service) error
}

// ErrBadServices is returned (wrapped) for services the node refuses.
var ErrBadServices = errors.New("bad services")

// maxServicesBody bounds the request body.
const maxServicesBody = 64 << 10

func servicesHandler(s ServicesSetter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ServicesRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxServicesBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: "set services: decode: " + err.Error()})
			return
		}
		if err := s.SetServices(req.Owner, req.Services); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrBadServices) {
				status = http.StatusBadRequest
			}
			writeJSON(w, status, Error{Error: "set services: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, req)
	}
}

// SetServices replaces owner's services on the node.
func (c *Client) SetServices(ctx context.Context, owner string, svcs []api.Service) error {
	if svcs == nil {
		svcs = []api.Service{}
	}
	b, err := json.Marshal(ServicesRequest{Owner: owner, Services: svcs})
	if err != nil {
		return fmt.Errorf("set services: %w", err)
	}
	var out ServicesRequest
	if err := c.doBody(ctx, http.MethodPut, PathServices, bytes.NewReader(b), &out); err != nil {
		return fmt.Errorf("set services: %w", err)
	}
	return nil
}
