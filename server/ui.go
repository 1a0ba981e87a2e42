package server

import (
	"crypto/hmac"
	"crypto/sha256"

	"erasure/api"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/web"
)

// mountUI loads the signing key (audit.signing_key, or generated once into the data dir), and
// mounts the certificate routes and the dashboard (/ui/) on the API. The dashboard's sessions
// are signed with a key derived from the audit key, so that every process of a deployment
// accepts them.
func (s *Server) mountUI(auditKey []byte) error {
	signing, err := audit.LoadSigningKey(s.Config.Audit.SigningKey, s.Config.Server.DataDir)
	if err != nil {
		return err
	}
	s.Certifier = &pipeline.Certifier{Store: s.Store, Key: signing}
	for pattern, h := range api.CertificateRoutes(s.API, s.Certifier) {
		s.API.Mount(pattern, h)
	}
	m := hmac.New(sha256.New, auditKey)
	m.Write([]byte("erasure dashboard sessions/1"))
	s.UI, err = web.New(web.Config{
		Service: s.Service, Reports: s.Store, Trail: s.Store, Chain: s.Service.Chain, Hasher: s.Service, Auth: s.API,
		SessionKey: m.Sum(nil), Datasets: s.Config.Datasets, Identifiers: s.Config.Identifiers,
		Certifier: s.Certifier, Records: s.Records, Logger: s.Logger,
	})
	if err != nil {
		return err
	}
	s.API.Mount("/ui/", s.UI)
	return nil
}
