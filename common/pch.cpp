// Compiled once to build the precompiled header that every lesson target reuses.
