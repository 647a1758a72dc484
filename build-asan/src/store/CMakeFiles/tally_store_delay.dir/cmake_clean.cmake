file(REMOVE_RECURSE
  "CMakeFiles/tally_store_delay.dir/delay.c.o"
  "CMakeFiles/tally_store_delay.dir/delay.c.o.d"
  "libtally_store_delay.a"
  "libtally_store_delay.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_store_delay.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
