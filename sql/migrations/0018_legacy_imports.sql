-- An import's source may be the old invite service too: `invite import-legacy` (invite/legacy.py)
-- brings each old task's people in through the audience import, which records every import.
ALTER TABLE invite_imports DROP CONSTRAINT invite_imports_source_check;
ALTER TABLE invite_imports ADD CONSTRAINT invite_imports_source_check
    CHECK (source IN ('file', 'parsing', 'legacy'));
