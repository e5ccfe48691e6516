/* Placeholder translation unit for a library with no sources yet. */
typedef int orbit_empty_unit;
