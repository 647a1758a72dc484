file(REMOVE_RECURSE
  "CMakeFiles/counter.dir/counter.c.o"
  "CMakeFiles/counter.dir/counter.c.o.d"
  "counter"
  "counter.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/counter.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
