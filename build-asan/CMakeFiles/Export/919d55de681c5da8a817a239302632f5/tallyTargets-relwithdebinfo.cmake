#----------------------------------------------------------------
# Generated CMake target import file for configuration "RelWithDebInfo".
#----------------------------------------------------------------

# Commands may need to know the format version.
set(CMAKE_IMPORT_FILE_VERSION 1)

# Import target "tally::tally_static" for configuration "RelWithDebInfo"
set_property(TARGET tally::tally_static APPEND PROPERTY IMPORTED_CONFIGURATIONS RELWITHDEBINFO)
set_target_properties(tally::tally_static PROPERTIES
  IMPORTED_LINK_INTERFACE_LANGUAGES_RELWITHDEBINFO "C"
  IMPORTED_LOCATION_RELWITHDEBINFO "${_IMPORT_PREFIX}/lib/libtally.a"
  )

list(APPEND _cmake_import_check_targets tally::tally_static )
list(APPEND _cmake_import_check_files_for_tally::tally_static "${_IMPORT_PREFIX}/lib/libtally.a" )

# Import target "tally::tally" for configuration "RelWithDebInfo"
set_property(TARGET tally::tally APPEND PROPERTY IMPORTED_CONFIGURATIONS RELWITHDEBINFO)
set_target_properties(tally::tally PROPERTIES
  IMPORTED_LOCATION_RELWITHDEBINFO "${_IMPORT_PREFIX}/lib/libtally.so.0.1.0"
  IMPORTED_SONAME_RELWITHDEBINFO "libtally.so.0.1"
  )

list(APPEND _cmake_import_check_targets tally::tally )
list(APPEND _cmake_import_check_files_for_tally::tally "${_IMPORT_PREFIX}/lib/libtally.so.0.1.0" )

# Commands beyond this point should not need to know the version.
set(CMAKE_IMPORT_FILE_VERSION)
