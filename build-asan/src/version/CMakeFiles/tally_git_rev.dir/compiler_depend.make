# Empty custom commands generated dependencies file for tally_git_rev.
# This may be replaced when dependencies are built.
