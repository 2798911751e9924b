// Translation unit that owns the shared precompiled header (see encore_pch in CMakeLists.txt).
