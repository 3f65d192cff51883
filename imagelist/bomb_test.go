package imagelist_test
import ("testing";"strings";"errors";"github.com/vmtrust/vmtrust/imagelist")
func TestValueBomb(t *testing.T) {
	doc := "[" + strings.Repeat("0,", 8<<20) + "0]"
	if _, err := imagelist.Parse([]byte(doc)); !errors.Is(err, imagelist.ErrSyntax) || !strings.Contains(err.Error(), "values") {
		t.Fatalf("Parse of a value bomb = %v", err)
	}
}
