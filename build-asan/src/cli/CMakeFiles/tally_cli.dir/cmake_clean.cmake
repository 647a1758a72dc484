file(REMOVE_RECURSE
  "../../tally"
  "../../tally.pdb"
  "CMakeFiles/tally_cli.dir/main.c.o"
  "CMakeFiles/tally_cli.dir/main.c.o.d"
  "CMakeFiles/tally_cli.dir/offline.c.o"
  "CMakeFiles/tally_cli.dir/offline.c.o.d"
  "CMakeFiles/tally_cli.dir/online.c.o"
  "CMakeFiles/tally_cli.dir/online.c.o.d"
  "CMakeFiles/tally_cli.dir/out.c.o"
  "CMakeFiles/tally_cli.dir/out.c.o.d"
  "CMakeFiles/tally_cli.dir/tls.c.o"
  "CMakeFiles/tally_cli.dir/tls.c.o.d"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/tally_cli.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
