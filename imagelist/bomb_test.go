package imagelist_test

import (
	"errors"
	"github.com/vmtrust/vmtrust/imagelist"
	"strings"
	"testing"
)

func TestValueBomb(t *testing.T) {
	doc := "[" + strings.Repeat("0,", 8<<20) + "0]"
	if _, err := imagelist.Parse([]byte(doc)); !errors.Is(err, imagelist.ErrSyntax) || !strings.Contains(err.Error(), "values") {
		t.Fatalf("Parse of a value bomb = %v", err)
	}
}
