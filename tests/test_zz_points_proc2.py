from __future__ import annotations
import processing, pytest
from osgeo import ogr
from qgis.core import QgsProcessingException

MEUSE = "/work/main/resources/sample_data/meuse.gpkg"

def test_save_to_geopackage_layer(srl_provider, tmp_path):
    proj = tmp_path / "project.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(proj)); l = ds.CreateLayer("roads", None, ogr.wkbPoint)
    f = ogr.Feature(l.GetLayerDefn()); f.SetGeometry(ogr.CreateGeometryFromWkt("POINT(1 1)")); l.CreateFeature(f); ds = None
    for out in [f"ogr:dbname='{proj}' table=\"emb\" (geom)", str(proj)]:
        try:
            r = processing.run("srl:embed_points", {"INPUT": MEUSE, "MODEL": "local", "OUTPUT": out})
            ds = ogr.Open(str(proj)); print("OUT", out, "->", r, [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]); ds = None
        except QgsProcessingException as e:
            print("OUT", out, "-> ERR", e)
    for out in [f"ogr:dbname='{tmp_path}/st.gpkg' table=\"emb\" (geom)"]:
        try:
            r = processing.run("srl:sample_tiles_at_points", {"INPUT": "/work/main/tests/data/nc_landsat_crop.tif", "POINTS": MEUSE, "MODEL": "bandstats", "OUTPUT": out})
        except QgsProcessingException as e:
            print("ST", out, "-> ERR", e)
