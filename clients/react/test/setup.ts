// waitFor's default 1 s is too short on a loaded 2-core CI box (the first connect of a
// file can take longer); a real failure still fails, after 10 s.
import { configure } from '@testing-library/react'

configure({ asyncUtilTimeout: 10_000 })
