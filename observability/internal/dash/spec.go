package dash

//lint:file-ignore SA1019 the v1 dashboard schema is the one every Grafana imports by file provisioning; dashboardv2 needs Grafana 12 with a feature flag.

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DatasourceVar is the dashboard variable that picks the Prometheus data
// source; every panel and query refers to it, so the dashboards import into
// any Grafana whatever its data source is called.
const DatasourceVar = "datasource"

// kind is a panel type.
type kind int

const (
	kindTimeseries kind = iota
	kindStat
	kindTable   // instant queries, one row per series
	kindHeatmap // Prometheus histogram buckets (format heatmap)
)

// query is one PromQL target of a panel.
type query struct {
	expr   string
	legend string
}

// panel is what a dashboard panel shows; build turns it into the SDK's
// builder.
type panel struct {
	kind    kind
	title   string
	desc    string
	unit    string
	width   uint32 // grid columns of 24; 12 when zero
	queries []query
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

func ts(title, unit, desc string, qs ...query) panel {
	return panel{kind: kindTimeseries, title: title, unit: unit, desc: desc, queries: qs}
}

func st(title, unit, desc string, qs ...query) panel {
	return panel{kind: kindStat, title: title, unit: unit, desc: desc, width: 6, queries: qs}
}

func tbl(title, desc string, qs ...query) panel {
	return panel{kind: kindTable, title: title, desc: desc, width: 24, queries: qs}
}

func hm(title, unit, desc string, qs ...query) panel {
	return panel{kind: kindHeatmap, title: title, unit: unit, desc: desc, queries: qs}
}

func datasource() common.DataSourceRef {
	t, uid := "prometheus", "${"+DatasourceVar+"}"
	return common.DataSourceRef{Type: &t, Uid: &uid}
}

func (p panel) targets() []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(p.queries))
	for i, qq := range p.queries {
		b := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(string(rune('A' + i))).
			Expr(qq.expr)
		if qq.legend != "" {
			b.LegendFormat(qq.legend)
		}
		switch p.kind {
		case kindTable:
			b.Instant().Format(prometheus.PromQueryFormatTable)
		case kindHeatmap:
			b.Format(prometheus.PromQueryFormatHeatmap)
		case kindStat:
			b.Instant()
		default:
			b.Range()
		}
		out = append(out, b)
	}
	return out
}

func (p panel) build(id uint32) cog.Builder[dashboard.Panel] {
	w := p.width
	if w == 0 {
		w = 12
	}
	var h uint32 = 8
	switch p.kind {
	case kindStat:
		h = 4
		b := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(datasource()).
			Span(w).Height(h).Targets(p.targets()).
			GraphMode(common.BigValueGraphModeArea).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		if p.unit != "" {
			b.Unit(p.unit)
		}
		return b
	case kindTable:
		return table.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(datasource()).
			Span(w).Height(h).Targets(p.targets()).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}))
	case kindHeatmap:
		b := heatmap.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(datasource()).
			Span(w).Height(h).Targets(p.targets()).
			Calculate(false).
			YAxis(heatmap.NewYAxisConfigBuilder().Unit(p.unit))
		return b
	}
	b := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(datasource()).
		Span(w).Height(h).Targets(p.targets()).FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom))
	if p.unit != "" {
		b.Unit(p.unit)
	}
	return b
}

// row groups panels under a title.
type row struct {
	title  string
	panels []panel
}

// board is one dashboard.
type board struct {
	file  string // file name under the output directory, without .json
	uid   string
	title string
	desc  string
	vars  []variable
	rows  []row
}

// variable is a query variable over a label of a metric.
type variable struct {
	name, label, query string
	multi              bool
}

func (v variable) build() cog.Builder[dashboard.VariableModel] {
	qs := v.query
	b := dashboard.NewQueryVariableBuilder(v.name).Label(v.label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: &qs}).
		Definition(v.query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if v.multi {
		b.Multi(true).IncludeAll(true).AllValue(".*")
	}
	return b
}

func (bd board) builder() *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(bd.title).
		Uid(bd.uid).
		Description(bd.desc).
		Tags([]string{"tunnelmesh"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone("browser").
		WithVariable(dashboard.NewDatasourceVariableBuilder(DatasourceVar).Label("Data source").Type("prometheus"))
	for _, v := range bd.vars {
		b.WithVariable(v.build())
	}
	// Panel IDs are unique in a dashboard and stable across runs, so
	// links to a panel (viewPanel=ID) survive regeneration.
	var id uint32
	for _, r := range bd.rows {
		id++
		b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			b.WithPanel(p.build(id))
		}
	}
	return b
}
