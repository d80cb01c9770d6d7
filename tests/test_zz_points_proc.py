from __future__ import annotations
import numpy as np, processing, pytest
from osgeo import ogr, osr, gdal
from qgis.core import QgsProcessingException, QgsVectorLayer, QgsProject, QgsProcessingFeatureSourceDefinition, QgsCoordinateReferenceSystem
from conftest import LANDSAT_CROP

M = "satclip-style-bluemarble-sh20-basis10"

def _read(path):
    ds = ogr.Open(str(path)); l = ds.GetLayer(0); d = l.GetLayerDefn()
    fields = [(d.GetFieldDefn(i).GetName(), d.GetFieldDefn(i).GetTypeName()) for i in range(d.GetFieldCount()) if not d.GetFieldDefn(i).GetName().startswith("emb_")]
    rows = [(f.GetFID(), {k: v for k, v in f.items().items() if not k.startswith("emb_")}, f.GetGeometryRef().ExportToIsoWkt(), f.GetField("emb_000")) for f in l]
    return fields, rows, l.GetMetadata(), l.GetSpatialRef().ExportToWkt()[:40] if l.GetSpatialRef() else None

def test_csv_delimited(srl_provider, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("id,name,lon,lat,v\n1,a,5.7,50.9,1.5\n2,b,-100,40,\n3,c,120,-30,3\n")
    uri = f"file://{csv}?delimiter=,&xField=lon&yField=lat&crs=EPSG:4326"
    lyr = QgsVectorLayer(uri, "s", "delimitedtext"); assert lyr.isValid()
    out = tmp_path / "o.gpkg"
    processing.run("srl:embed_points", {"INPUT": lyr, "MODEL": M, "OUTPUT": str(out)})
    print("CSV", _read(out))

def test_selected_and_fids(srl_provider, tmp_path):
    src = tmp_path / "p.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(src)); s = osr.SpatialReference(); s.ImportFromEPSG(4326)
    l = ds.CreateLayer("p", s, ogr.wkbPoint); l.CreateField(ogr.FieldDefn("k", ogr.OFTInteger))
    for i in range(6):
        f = ogr.Feature(l.GetLayerDefn()); f.SetFID(10 + i * 10); f.SetField("k", i); f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT({i*10} {i*5})")); l.CreateFeature(f)
    ds = None
    lyr = QgsVectorLayer(str(src), "p", "ogr"); QgsProject.instance().addMapLayer(lyr)
    lyr.selectByIds([20, 40, 50])
    out = tmp_path / "sel.gpkg"
    processing.run("srl:embed_points", {"INPUT": QgsProcessingFeatureSourceDefinition(lyr.id(), True), "MODEL": M, "OUTPUT": str(out)})
    print("SEL", _read(out))
    out2 = tmp_path / "all.gpkg"
    processing.run("srl:embed_points", {"INPUT": lyr, "MODEL": M, "OUTPUT": str(out2)})
    print("ALL", _read(out2)[1])
    QgsProject.instance().removeMapLayer(lyr.id())

def test_memory_layer_z(srl_provider, tmp_path):
    lyr = QgsVectorLayer("PointZ?crs=EPSG:28992&field=n:integer&field=d:date", "m", "memory")
    from qgis.core import QgsFeature, QgsGeometry, QgsPoint
    feats = []
    for i, (x, y) in enumerate([(181072, 333611), (181025, 333558), (181165, 333537), (181298, 333484)]):
        f = QgsFeature(lyr.fields()); f.setAttributes([i, None]); f.setGeometry(QgsGeometry(QgsPoint(x, y, 10.0 * i))); feats.append(f)
    lyr.dataProvider().addFeatures(feats)
    out = tmp_path / "mem.gpkg"
    processing.run("srl:embed_points", {"INPUT": lyr, "OUTPUT": str(out)})
    print("MEM", _read(out))

def test_sample_tiles_points_4326_temp(srl_provider, tmp_path):
    src = gdal.Open(str(LANDSAT_CROP)); x0, px, _, y0, _, py = src.GetGeoTransform()
    from srl_core.vector.crs import to_lonlat
    xy = np.array([[x0 + c * px, y0 + r * py] for c, r in [(64.5, 64.5), (100.5, 30.5), (126, 126)]])
    ll = to_lonlat(xy, src.GetProjection())
    lyr = QgsVectorLayer("Point?crs=EPSG:4326&field=lab:string", "m", "memory")
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY
    fs = []
    for i, (x, y) in enumerate(ll):
        f = QgsFeature(lyr.fields()); f.setAttributes([f"p{i}"]); f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y))); fs.append(f)
    lyr.dataProvider().addFeatures(fs)
    r = processing.run("srl:sample_tiles_at_points", {"INPUT": str(LANDSAT_CROP), "POINTS": lyr, "MODEL": "bandstats", "OUTPUT": "TEMPORARY_OUTPUT"})
    print("ST", r, _read(r["OUTPUT"]))
