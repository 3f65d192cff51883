package imagelist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ordered writes a JSON object whose keys keep the order they were added in,
// which keeps lists readable and diffable. Empty optional fields are left out.
type ordered struct {
	keys []string
	vals []json.RawMessage
}

func (o *ordered) raw(k string, v json.RawMessage) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o *ordered) str(k, v string) { o.raw(k, mustJSON(v)) }

func (o *ordered) opt(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *ordered) date(k string, t time.Time) { o.str(k, t.UTC().Format(TimeFormat)) }

func (o *ordered) extra(x map[string]json.RawMessage) {
	for _, k := range slices.Sorted(maps.Keys(x)) {
		o.raw(k, x[k])
	}
}

func (o *ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(mustJSON(k))
		b.WriteByte(':')
		b.Write(o.vals[i])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func mustJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("imagelist: encoding %T: %v", v, err)) // only called on strings and ordered objects
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// Marshal writes the list as {"hv:imagelist": {...}}, indented with two
// spaces and ending in a newline. Known fields come first in a fixed order;
// Extra fields follow, sorted.
func Marshal(l *List) ([]byte, error) {
	body := &ordered{}
	body.date("dc:date:created", l.Created)
	body.date("dc:date:expires", l.Expires)
	body.str("dc:identifier", l.Identifier)
	body.str("dc:description", l.Description)
	body.str("dc:title", l.Title)
	body.str("dc:source", l.Source)
	body.opt("ad:vo", l.VO)
	x := &ordered{}
	x.str("dc:creator", l.Endorser.Creator)
	x.str("hv:ca", l.Endorser.CA)
	x.str("hv:dn", l.Endorser.DN)
	x.str("hv:email", l.Endorser.Email)
	x.extra(l.Endorser.Extra)
	endorser := &ordered{}
	endorser.raw("hv:x509", mustJSON(x))
	body.raw("hv:endorser", mustJSON(endorser))
	images := make([]json.RawMessage, 0, len(l.Images))
	for i := range l.Images {
		w := &ordered{}
		w.raw("hv:image", mustJSON(imageObject(&l.Images[i])))
		images = append(images, mustJSON(w))
	}
	body.raw("hv:images", mustJSON(images))
	body.str("hv:uri", l.URI)
	body.str("hv:version", l.Version)
	body.extra(l.Extra)
	top := &ordered{}
	top.raw("hv:imagelist", mustJSON(body))

	var out bytes.Buffer
	if err := json.Indent(&out, mustJSON(top), "", "  "); err != nil {
		return nil, fmt.Errorf("imagelist: indenting: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func imageObject(im *Image) *ordered {
	o := &ordered{}
	o.str("dc:identifier", im.Identifier)
	o.str("dc:title", im.Title)
	o.str("dc:description", im.Description)
	o.raw("hv:size", json.RawMessage(strconv.FormatInt(im.Size, 10)))
	o.str("sl:checksum:sha512", im.SHA512)
	o.str("hv:uri", im.URI)
	o.str("hv:version", im.Version)
	o.str("hv:hypervisor", im.Hypervisor)
	o.opt("hv:format", im.Format)
	o.str("sl:arch", im.Arch)
	o.str("sl:os", im.OS)
	o.opt("sl:osname", im.OSName)
	o.str("sl:osversion", im.OSVersion)
	o.str("sl:comments", im.Comments)
	if !im.Expires.IsZero() {
		o.date("dc:date:expires", im.Expires)
	}
	o.opt("hv:ram_minimum", im.RAMMinimum)
	o.opt("ad:ram_recommended", im.RAMRecommended)
	o.opt("hv:core_minimum", im.CoreMinimum)
	o.opt("ad:core_recommended", im.CoreRecommended)
	o.opt("ad:vo", im.VO)
	o.opt("ad:mpuri", im.MPURI)
	o.opt("ad:base_mpuri", im.BaseMPURI)
	o.opt("ad:group", im.Group)
	o.opt("ad:appid", im.AppID)
	o.opt("ad:user:fullname", im.UserFullname)
	o.opt("ad:user:guid", im.UserGUID)
	o.opt("ad:user:uri", im.UserURI)
	o.extra(im.Extra)
	return o
}
