"""Getting data into the data directory (download, safe extraction, import), caching tokenised splits, and
reading untrusted pickles safely. ``fpt_bench.datastore.files`` says what is there; this package puts it there."""
